"""Adobe emulator: ``--adobe-*`` command-line options."""

import argparse
import json

import pytest

from emulators.adobe import AdobeConfig, add_cli_arguments, config_from_cli


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    return config_from_cli(parser.parse_args(argv))


def test_no_options_give_the_defaults():
    assert parse() == AdobeConfig()


def test_every_field_has_an_option_with_help():
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    options = {a.dest: a for a in parser._actions}
    for field in AdobeConfig.__dataclass_fields__:
        assert options[f"adobe_{field}"].help


def test_options_are_parsed_to_their_types(tmp_path):
    faults = {"seed": 3, "rules": [{"path": "/collection/*", "status_rates": {"503": 0.1}}]}
    faults_file = tmp_path / "faults.json"
    faults_file.write_text(json.dumps(faults))
    config = parse(
        "--adobe-clients", "a:secret-a",
        "--adobe-clients", "b:secret-b",
        "--adobe-allowed-scopes", "openid, AdobeID",
        "--adobe-tenant-id", "acme",
        "--adobe-token-lifetime-seconds", "2.5",
        "--adobe-invalid-token-status", "403",
        "--adobe-max-request-bytes", "2048",
        "--adobe-validate", "false",
        "--adobe-store-messages", "false",
        "--adobe-faults", f"@{faults_file}",
    )  # fmt: skip
    assert config.clients == {"a": "secret-a", "b": "secret-b"}
    assert config.allowed_scopes == ("openid", "AdobeID")
    assert config.tenant_id == "acme"
    assert config.token_lifetime_seconds == 2.5
    assert config.invalid_token_status == 403
    assert config.max_request_bytes == 2048
    assert config.validate is False
    assert config.store_messages is False
    assert config.fault_profile().rules[0].status_rates == {503: 0.1}


@pytest.mark.parametrize(
    "argv", [["--adobe-clients", "no-secret"], ["--adobe-validate", "maybe"], ["--adobe-invalid-token-status", "500"]]
)
def test_bad_values_are_usage_errors(argv):
    with pytest.raises(SystemExit):
        parse(*argv)
