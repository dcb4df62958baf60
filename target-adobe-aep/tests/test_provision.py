"""`target-adobe-aep-admin provision` against an empty emulated sandbox: it makes everything the target writes to,
once; `--plan` changes nothing; an object of another shape is reported and left alone; writes whose outcome is
unknown are not repeated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import SAMPLES, Aep, admin, stream_messages, write_config

from target_adobe_aep.admin import cli

EMPTY = pytest.mark.adobe(provisioned=False)
# What provision makes for the presets: the custom identity namespace, one inlet (base connection), and per destination
# a field group, a schema, a dataset, a source and a target connection and a dataflow.
MADE = {"fieldGroups": 2, "schemas": 2, "descriptors": 0, "namespaces": 1, "dataSets": 2, "connections": 1,
        "sourceConnections": 2, "targetConnections": 2, "flows": 2}  # fmt: skip
NOTHING = dict.fromkeys(MADE, 0)
SETTINGS = ("inlet_url", "flow_id", "profile_flow_id", "event_flow_id", "profile_dataset_id", "profile_schema_id",
            "event_dataset_id", "event_schema_id")  # fmt: skip


def provisioning_config(aep: Aep, **overrides: object) -> str:
    """The emulator's credentials and tenant, and none of the ids provision finds or makes."""
    return write_config(aep, **dict.fromkeys(SETTINGS), **overrides)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def objects(aep: Aep) -> dict[str, int]:
    return aep.server.call(aep.state.sandbox.counts)


def writes(aep: Aep) -> list[str]:
    """The platform writes the emulator answered (creations and changes)."""
    return [f"{e['method']} {e['path']}" for e in aep.requests("/data/") if e["method"] in ("POST", "PATCH")
            and not e["path"].endswith("/metrics")]  # fmt: skip


@EMPTY
def test_plan_changes_nothing_and_names_each_call(aep: Aep) -> None:
    result = invoke("provision", "--config", provisioning_config(aep), "--plan")
    assert result.exit_code == 0, result.output
    assert objects(aep) == NOTHING
    assert writes(aep) == []
    lines = result.output.splitlines()
    for what, call in [
        ("identity namespace 'CapillaryCustomerId'", "POST /data/core/idnamespace/identities"),
        ("field group 'Capillary Loyalty Profile Fields'", "POST /data/foundation/schemaregistry/tenant/fieldgroups"),
        ("schema 'Capillary Loyalty Events'", "POST /data/foundation/schemaregistry/tenant/schemas"),
        ("dataset 'Capillary Loyalty Events'", "POST /data/foundation/catalog/dataSets"),
        ("streaming connection 'Capillary Loyalty HTTP API'", "POST /data/foundation/flowservice/connections"),
        ("source connection 'Capillary Loyalty Events source'", "POST /data/foundation/flowservice/sourceConnections"),
        ("target connection 'Capillary Loyalty Profile target'", "POST /data/foundation/flowservice/targetConnections"),
        ("dataflow 'Capillary Loyalty Profile dataflow'", "POST /data/foundation/flowservice/flows"),
        ("dataflow 'Capillary Loyalty Events dataflow'", "POST /data/foundation/flowservice/flows"),
    ]:
        index = lines.index(f"create       {what}")
        assert lines[index + 1].startswith(f"  by {call}  ("), lines[index + 1]
    assert "exists       identity namespace 'Email'  standard" in lines
    assert lines[-1] == "Plan only: nothing was created or changed."


@EMPTY
def test_provision_makes_everything_once_and_the_target_then_delivers_every_record(aep: Aep) -> None:
    settings_file = aep.tmp_path / "settings.json"
    first = invoke("provision", "--config", provisioning_config(aep), "--write-config", str(settings_file))
    assert first.exit_code == 0, first.output
    assert objects(aep) == MADE
    assert "Created 14 and changed 0 object(s). Settings to use:" in first.output
    assert first.output.rstrip().endswith("The configuration works.")  # check ran with the new settings
    settings = json.loads(settings_file.read_text())
    assert settings["tenant_id"] == "capillarydemo"
    sandbox = aep.state.sandbox
    (connection,) = sandbox.connections.values()
    assert settings["inlet_url"] == f"{aep.server.base_url}/collection/{connection['auth']['params']['inletId']}"
    assert connection["auth"]["params"]["authenticationRequired"] is True  # inlet_auth_required's default
    assert "flow_id" not in settings  # a dataflow per destination, each leading to its dataset
    for kind in ("profile", "event"):
        flow = sandbox.flows[settings[f"{kind}_flow_id"]]
        ((source,), (target,)) = flow["sourceConnectionIds"], flow["targetConnectionIds"]
        assert sandbox.source_connections[source]["baseConnectionId"] == connection["id"]
        assert sandbox.target_connections[target]["params"]["dataSetId"] == settings[f"{kind}_dataset_id"]
    made = len(writes(aep))

    second = invoke("provision", "--config", provisioning_config(aep))
    assert second.exit_code == 0, second.output
    assert objects(aep) == MADE
    assert len(writes(aep)) == made  # found everything, made nothing
    assert "Created 0 and changed 0 object(s)." in second.output
    assert not [line for line in second.output.splitlines() if line.startswith(("created", "create ", "update"))]

    messages = [m for stream, records in SAMPLES.items() for m in stream_messages(stream, records)]
    run = aep.run([*messages, {"type": "STATE", "value": {"done": 1}}], **settings)
    assert run.states == [{"done": 1}]
    assert aep.dead_letters() == []
    counts = aep.counts()
    assert set(counts) == {settings["profile_dataset_id"], settings["event_dataset_id"]}
    sent = sum(stats.sent for stats in run.target.stats.values())
    assert sum(c["accepted"] for c in counts.values()) == sent > 0
    assert all(c["failed"] == 0 for c in counts.values())


@EMPTY
def test_meltano_config_warns_of_each_variable_that_would_override_a_stored_setting(aep: Aep) -> None:
    """Meltano gives environment variables and the project's .env precedence over meltano.yml: a placeholder left
    there would replace what provision stores. Variables that came from `meltano invoke` itself (it also passes
    MELTANO_LOAD_<SETTING>) are the settings' own values."""
    project = aep.tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(
        "TARGET_ADOBE_AEP_CLIENT_SECRET=not-provisioned\n"
        "TARGET_ADOBE_AEP_INLET_URL=https://dcs.adobedc.net/collection/<inletId>\n"
        "TARGET_ADOBE_AEP_EVENT_FLOW_ID=\n"  # empty: it still overrides
        "# TARGET_ADOBE_AEP_EVENT_DATASET_ID=   filled by provision\n"
        "TARGET_ADOBE_AEP_TENANT_ID\n"  # no "=": sets nothing
    )
    env = {"MELTANO_PROJECT_ROOT": str(project), "TARGET_ADOBE_AEP_PROFILE_SCHEMA_ID": "placeholder",
           "TARGET_ADOBE_AEP_EVENT_SCHEMA_ID": "passed", "MELTANO_LOAD_EVENT_SCHEMA_ID": "passed"}  # fmt: skip
    args = [
        "provision",
        "--config",
        provisioning_config(aep),
        "--meltano-config",
        "--meltano-bin",
        shutil.which("true"),
    ]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("WARNING: ")]
    tail = "just stored: Meltano gives environment variables, its .env included, precedence over meltano.yml; " \
           "remove it, or runs use its value"  # fmt: skip
    assert warnings == [
        f"WARNING: TARGET_ADOBE_AEP_INLET_URL in {project / '.env'} overrides the inlet_url {tail}",
        f"WARNING: the environment variable TARGET_ADOBE_AEP_PROFILE_SCHEMA_ID overrides the profile_schema_id {tail}",
        f"WARNING: TARGET_ADOBE_AEP_EVENT_FLOW_ID in {project / '.env'} overrides the event_flow_id {tail}",
    ]


@EMPTY
def test_profile_enablement_is_asked_for_and_announced_before_it_is_done(aep: Aep) -> None:
    config = provisioning_config(aep)
    assert invoke("provision", "--config", config).exit_code == 0
    sandbox = aep.state.sandbox
    assert all("meta:immutableTags" not in schema for schema in sandbox.schemas.values())
    assert all(not dataset["tags"] for dataset in sandbox.datasets.values())

    result = invoke("provision", "--config", config, "--profile-enabled")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for title in ("Capillary Loyalty Profile", "Capillary Loyalty Events"):
        warning = next(i for i, line in enumerate(lines) if line.startswith(f"WARNING: enabling schema '{title}'"))
        assert "cannot be undone" in lines[warning]
        assert lines[warning + 1] == f"updated      schema '{title}': enabled for Profile"
    assert all(schema["meta:immutableTags"] == ["union"] for schema in sandbox.schemas.values())
    assert all(d["tags"]["unifiedProfile"] == ["enabled:true"] for d in sandbox.datasets.values())
    assert "Created 0 and changed 4 object(s)." in result.output
    assert objects(aep) == MADE


@EMPTY
def test_an_object_of_another_shape_is_reported_and_nothing_is_made(aep: Aep) -> None:
    """A schema of provision's title without its field groups: neither reused nor duplicated, and since everything is
    looked up first, provision makes nothing at all."""
    schema = {"title": "Capillary Loyalty Events", "type": "object",
              "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]}  # fmt: skip
    existing = aep.server.call(aep.state.sandbox.create_schema, schema)["$id"]
    before = objects(aep)

    result = invoke("provision", "--config", provisioning_config(aep))
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED: ")]
    assert failed == [
        f"FAILED: schema 'Capillary Loyalty Events' ({existing}) exists but lacks the field group(s) "
        "https://ns.adobe.com/xdm/context/experienceevent-commerce, <new field group 'Capillary Loyalty Events "
        "Fields'>; provision changes nothing it did not make and makes no second one: fix or delete it in AEP, or "
        "choose another --title"
    ]
    assert objects(aep) == before
    assert writes(aep) == []
    # Another title is another set of objects.
    assert invoke("provision", "--config", provisioning_config(aep), "--title", "Loyalty").exit_code == 0
    assert objects(aep)["schemas"] == 3


@EMPTY
def test_a_tenant_field_whose_type_no_rule_says_stops_provision(aep: Aep) -> None:
    nickname = {"to": "_{tenant_id}.capillary.nickname", "from": "first_name"}
    document = {"target": "profile", "fields": [{"to": "_id", "hash": ["customer_id"]}, nickname]}
    result = invoke("provision", "--config", provisioning_config(aep, mappings={"customers": document}))
    assert result.exit_code == 1
    assert (
        "FAILED: stream 'customers' (inline mapping) writes _capillarydemo.capillary.nickname without saying its type"
        in result.output
    )
    assert objects(aep) == NOTHING


@EMPTY
def test_a_write_whose_outcome_is_unknown_is_not_repeated_and_a_second_run_completes(aep: Aep) -> None:
    """A 502 to a POST may come after the object was made: provision stops (one line, no traceback) rather than
    risk a duplicate; run again, it looks the object up first."""
    aep.server.set_faults({"rules": [{"path": "/data/foundation/schemaregistry/tenant/fieldgroups", "method": "POST",
                                       "status_rates": {"502": 1.0}}]})  # fmt: skip
    result = admin("provision", "--config", provisioning_config(aep))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.endswith("POST /data/foundation/schemaregistry/tenant/fieldgroups answered HTTP 502; whether it "
                         "took effect is unknown")  # fmt: skip
    assert "Traceback" not in result.stderr
    assert writes(aep).count("POST /data/foundation/schemaregistry/tenant/fieldgroups") == 1
    aep.server.set_faults(None)
    assert invoke("provision", "--config", provisioning_config(aep)).exit_code == 0
    assert objects(aep) == MADE


def test_against_the_pre_provisioned_emulator_provision_finds_its_schemas_and_datasets(aep: Aep) -> None:
    """The emulator's default sandbox holds what provision --profile-enabled makes for the dev mappings (its seeds
    are generated from them): the schemas, field groups and datasets are found; the streaming objects are made."""
    stores = str(Path(__file__).parents[1] / "examples" / "stores-as-events.json")
    result = invoke("provision", "--config", write_config(aep, mappings={"stores": stores}), "--profile-enabled")
    assert result.exit_code == 0, result.output
    for kind, title in (("profile", "Profile"), ("event", "Events")):
        dataset = aep.config[f"{kind}_dataset_id"]
        assert f"exists       dataset 'Capillary Loyalty {title}'  {dataset}" in result.output
    assert "Created 7 and changed 0 object(s)." in result.output  # the connections and the dataflows
