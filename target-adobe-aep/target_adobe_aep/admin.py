"""``target-adobe-aep-admin``: administration commands that read the target's own settings.

    target-adobe-aep-admin check --config config.json [--stream customers ...]
    target-adobe-aep-admin check --config ENV          # TARGET_ADOBE_AEP_* variables, as Meltano passes them

In Meltano: ``meltano invoke target-adobe-aep:check`` (the plugin command runs ``check --config ENV``).
"""

from __future__ import annotations

import sys

import click

from target_adobe_aep.errors import FATAL_ERRORS, exit_with
from target_adobe_aep.mapping import PRESETS
from target_adobe_aep.preflight import PreflightError
from target_adobe_aep.target import TargetAdobeAEP

CONFIG_HELP = (
    "Settings JSON file, or ENV to read TARGET_ADOBE_AEP_* environment variables (repeatable, merged in order)."
)


def load_target(configs: tuple[str, ...]) -> TargetAdobeAEP:
    """The target with the settings of ``configs``, validated and with their defaults, as the target reads them."""
    files = [path for path in configs if path != "ENV"]
    return TargetAdobeAEP(config=files or None, parse_env_config="ENV" in configs, validate_config=True)


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
    target = load_target(configs)
    preflight = target.preflight
    preflight.report = lambda line: click.echo(f"ok: {line}")
    default = sorted({path.name.removesuffix(".json") for path in PRESETS.iterdir() if path.name.endswith(".json")}
                     | set(target.config.get("mappings") or {}))  # fmt: skip
    findings = []
    for step in (preflight.check_connection, lambda: preflight.check_mappings(streams or default)):
        try:
            step()
        except PreflightError as exc:
            findings += exc.findings
    for finding in dict.fromkeys(findings):  # streams sharing a schema share its findings
        click.echo(f"FAILED: {finding}")
    if findings:
        sys.exit(1)
    click.echo("The configuration works.")


def main() -> None:
    """The console script: errors end in one line (no traceback) and exit code 1."""
    try:
        cli()
    except FATAL_ERRORS as exc:
        exit_with(exc)
