"""``target-adobe-aep-admin``: administration commands that read the target's own settings.

    target-adobe-aep-admin check --config config.json [--stream customers ...]
    target-adobe-aep-admin check --config ENV          # TARGET_ADOBE_AEP_* variables, as Meltano passes them
    target-adobe-aep-admin provision --config ENV [--plan] [--profile-enabled] [--write-config FILE] [--meltano-config]
    target-adobe-aep-admin report --config ENV [--since 24h] [--dead-letter]

In Meltano: ``meltano invoke target-adobe-aep:check``, ``…:provision`` and ``…:report`` (the plugin commands run
the command with ``--config ENV``; more options follow the command).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from dotenv import dotenv_values

from target_adobe_aep.errors import FATAL_ERRORS, exit_with
from target_adobe_aep.platform import UncertainOutcome
from target_adobe_aep.preflight import Finding, PreflightError
from target_adobe_aep.provision import Names, Provisioner, ProvisionError
from target_adobe_aep.report import Reporter, ReportError, existing_dead_letters, since_time
from target_adobe_aep.target import TargetAdobeAEP

CONFIG_HELP = (
    "Settings JSON file, or ENV to read TARGET_ADOBE_AEP_* environment variables (repeatable, merged in order)."
)
# The settings provision finds or makes, in the order it prints them.
PROVISIONED = ("tenant_id", "inlet_url", "profile_dataset_id", "profile_schema_id", "profile_flow_id",
               "event_dataset_id", "event_schema_id", "event_flow_id")  # fmt: skip


def load_target(configs: Iterable[str]) -> TargetAdobeAEP:
    """The target with the settings of ``configs``, validated and with their defaults, as the target reads them."""
    configs = tuple(configs)
    config: dict = {}
    for path in configs:  # later files win, as the SDK merges several --config files
        if path != "ENV":
            config.update(json.loads(Path(path).read_text()))
    return TargetAdobeAEP(config=config, parse_env_config="ENV" in configs, validate_config=True)


def run_check(target: TargetAdobeAEP, streams: Iterable[str], echo: Callable[[str], None]) -> list[Finding]:
    """The preflight checks of ``target``'s settings and of its mappings (``streams``; default: every built-in preset
    and every stream of the mappings setting); each problem once."""
    preflight = target.preflight
    preflight.report = lambda line: echo(f"ok: {line}")
    default = target.active_streams()
    findings: list[Finding] = []
    for step in (preflight.check_connection, lambda: preflight.check_mappings(tuple(streams) or default)):
        try:
            step()
        except PreflightError as exc:
            findings += exc.findings
    return list(dict.fromkeys(findings))  # streams sharing a schema share its findings


def _exit_on(findings: Sequence[object]) -> None:
    """Print each problem as ``FAILED: …`` and exit 1 if there is any."""
    for finding in findings:
        click.echo(f"FAILED: {finding}")
    if findings:
        sys.exit(1)


@click.group()
def cli() -> None:
    """Administration of target-adobe-aep's Adobe setup, with the target's settings."""


@cli.command()
@click.option("--config", "configs", multiple=True, required=True, help=CONFIG_HELP)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help="Check the mapping of this stream (repeatable). Default: every built-in preset and every stream of the "
    "mappings setting.",
)
def check(configs: tuple[str, ...], streams: tuple[str, ...]) -> None:
    """Check the settings against Adobe, as the target does before reading input: IMS token, tenant, schemas,
    datasets' schemaRef, one syncValidation probe of the inlet per destination (nothing is ingested), and that each
    mapping writes only paths its schema has. Exits 1 listing each problem and the setting to fix."""
    _exit_on(run_check(load_target(configs), streams, click.echo))
    click.echo("The configuration works.")


def _write_config(path: Path, settings: dict[str, str]) -> None:
    """Merge ``settings`` into the JSON config file at ``path`` (created if missing)."""
    config = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**config, **settings}, indent=2) + "\n")


def _meltano_config_set(meltano: str, plugin: str, settings: dict[str, str]) -> None:
    """``meltano config set <plugin> <name> <value>`` (Meltano 4) for each setting, in the Meltano project that runs
    this command (``MELTANO_PROJECT_ROOT``, which ``meltano invoke`` sets) or the current directory; then a WARNING
    for each variable that would override a stored setting."""
    root = Path(os.environ.get("MELTANO_PROJECT_ROOT") or os.getcwd())
    for name, value in settings.items():
        result = subprocess.run([meltano, "config", "set", plugin, name, value], cwd=root, capture_output=True,
                                text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            raise click.ClickException(f"meltano config set {plugin} {name} failed: {result.stderr.strip()[-500:]}")
    click.echo(f"Stored the settings in the Meltano project at {root} (meltano config set {plugin}).")
    for variable, name in shadowing_variables(plugin, settings, root, os.environ):
        click.echo(f"WARNING: {variable} overrides the {name} just stored: Meltano gives environment variables, "
                   "its .env included, precedence over meltano.yml; remove it, or runs use its value")  # fmt: skip


def shadowing_variables(
    plugin: str, names: Iterable[str], root: Path, environ: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(where, setting)`` for each environment variable that would override a setting of ``names`` stored in
    ``meltano.yml``: Meltano reads ``<PLUGIN>_<SETTING>`` (the plugin's name or namespace) from the environment and
    the project's ``.env`` before ``meltano.yml`` (docs.meltano.com/guide/configuration, "Configuration layers").
    ``.env`` is read as Meltano reads it (python-dotenv). A variable that came with ``MELTANO_LOAD_<SETTING>`` was
    passed by ``meltano invoke`` (it passes every setting both ways) and holds the setting's value, so it is not
    counted: under ``meltano invoke`` only ``.env`` is checked."""
    dotenv_path = root / ".env"
    dotenv = dotenv_values(dotenv_path) if dotenv_path.is_file() else {}
    prefixes = dict.fromkeys(re.sub(r"[^A-Za-z0-9]", "_", prefix).upper() for prefix in (plugin, "target_adobe_aep"))
    found: list[tuple[str, str]] = []
    for name in names:
        for prefix in prefixes:
            variable = f"{prefix}_{name.upper()}"
            if dotenv.get(variable) is not None:  # a line without "=" sets nothing (Project.dotenv_env)
                found.append((f"{variable} in {dotenv_path}", name))
            elif variable in environ and f"MELTANO_LOAD_{name.upper()}" not in environ:
                found.append((f"the environment variable {variable}", name))
    return found


@cli.command()
@click.option("--config", "configs", multiple=True, required=True, help=CONFIG_HELP)
@click.option("--plan", is_flag=True, help="Look everything up and print what would be created or changed, and the "
              "calls that would do it; change nothing.")  # fmt: skip
@click.option("--profile-enabled", is_flag=True, help="Enable the schemas for Real-Time Customer Profile (the 'union' "
              "tag: irreversible in AEP) and tag the datasets for Profile and Identity Service.")  # fmt: skip
@click.option("--title", default=Names.title, show_default=True, help="Prefix of the titles and names of what "
              "provision makes (schemas '<title> Profile'/'<title> Events', their field groups and datasets, "
              "'<title> HTTP API' connection, '<title> Profile dataflow'/'<title> Events dataflow').")  # fmt: skip
@click.option("--write-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Also merge the settings into this JSON config file (created if missing).")  # fmt: skip
@click.option("--meltano-config", "meltano_config", is_flag=True,
              help="Also store the settings in the Meltano project (meltano config set <plugin> ...).")  # fmt: skip
@click.option("--meltano-bin", default="meltano", show_default=True, help="The meltano executable (--meltano-config).")
@click.option("--meltano-plugin", default="target-adobe-aep", show_default=True, help="The plugin's name in Meltano.")
def provision(
    configs: tuple[str, ...],
    plan: bool,
    profile_enabled: bool,
    title: str,
    write_config: Path | None,
    meltano_config: bool,
    meltano_bin: str,
    meltano_plugin: str,
) -> None:
    """Find or create, in the settings' sandbox, everything the target writes to: the tenant field group built from
    the active mappings, the profile and event schemas, the identity namespaces, the datasets, the HTTP API streaming
    connection, and per dataset a source and a target connection and a dataflow. Objects that exist are checked and
    reused; one that exists with another shape is reported and left alone. Then prints the settings to use and runs
    check."""
    target = load_target(configs)
    names = Names(title)
    # Everything is looked up before anything is made: an object of another shape stops provision before it starts.
    outcome = Provisioner(target, names, plan=True, profile_enabled=profile_enabled, echo=click.echo if plan else
                          lambda _: None).run()  # fmt: skip
    if not plan and not outcome.findings:
        outcome = Provisioner(target, names, plan=False, profile_enabled=profile_enabled, echo=click.echo).run()
    _exit_on(outcome.findings)
    if plan:
        click.echo("Plan only: nothing was created or changed.")
        return
    settings = {name: str(outcome.settings[name]) for name in PROVISIONED if name in outcome.settings}
    click.echo(f"Created {len(outcome.created)} and changed {len(outcome.changed)} object(s). Settings to use:")
    for name, value in settings.items():
        previous = target.config.get(name)
        click.echo(f"  {name}: {value}" + (f"  (was {previous})" if previous and previous != value else ""))
    if write_config:
        _write_config(write_config, settings)
        click.echo(f"Wrote them to {write_config}.")
    if meltano_config:
        _meltano_config_set(meltano_bin, meltano_plugin, settings)
    _exit_on(run_check(TargetAdobeAEP(config={**target.config, **settings}, validate_config=True), (), click.echo))
    click.echo("The configuration works.")


@cli.command()
@click.option("--config", "configs", multiple=True, required=True, help=CONFIG_HELP)
@click.option("--since", default="24h", show_default=True, help="Batches created after this time: RFC 3339 (naive: "
              "UTC) or a duration before now (90m, 24h, 7d).")  # fmt: skip
@click.option("--dataset", "datasets", multiple=True, help="Report on this dataset (repeatable). Default: "
              "profile_dataset_id and event_dataset_id.")  # fmt: skip
@click.option("--dead-letter", is_flag=True, help="Also append each failed record to dead_letter_path (once).")
@click.option("--show", default=20, show_default=True, help="Failed records printed per batch.")
def report(configs: tuple[str, ...], since: str, datasets: tuple[str, ...], dead_letter: bool, show: int) -> None:
    """What AEP made of what was sent: per dataset, the batches created since --since and their status; for failed
    batches each failed record with AEP's validation errors, joined back to its Singer stream and key through the
    deterministic _id; and the observability metrics (records ingested, failed batches, inlet calls)."""
    target = load_target(configs)
    now = datetime.now(UTC)
    start = since_time(since, now)
    kinds = {target.config[f"{kind}_dataset_id"]: kind for kind in ("profile", "event")
             if target.config.get(f"{kind}_dataset_id")}  # fmt: skip
    chosen = list(datasets or kinds)
    if not chosen:
        raise click.UsageError("no dataset: set profile_dataset_id / event_dataset_id, or pass --dataset")
    reporter = Reporter(target, click.echo, shown_per_batch=show)
    for dataset_id in chosen:
        reporter.dataset(kinds.get(dataset_id), dataset_id, start)
    reporter.metrics(chosen, start, now)
    click.echo(f"{len(reporter.failed)} failed record(s) since {start.strftime('%Y-%m-%dT%H:%M:%SZ')}.")
    if dead_letter and reporter.failed:
        letters = target.dead_letter
        seen = existing_dead_letters(iter(letters.path.read_text().splitlines()) if letters.path.exists() else iter(()))
        entries = [f.dead_letter_entry() for f in reporter.failed if (f.batch_id, str(f.entity.get("_id"))) not in seen]
        letters.write(entries)
        click.echo(f"Appended {len(entries)} to the dead letter {letters.path}.")


def main() -> None:
    """The console script: errors end in one line (no traceback) and exit code 1."""
    try:
        cli()
    except (*FATAL_ERRORS, ProvisionError, ReportError, UncertainOutcome) as exc:
        exit_with(exc)
