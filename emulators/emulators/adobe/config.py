"""Configuration of the Adobe emulator and its ``--adobe-*`` command-line options.

Defaults give a ready setup: one org, one OAuth server-to-server client, the ``capillarydemo`` tenant
with a profile and an event dataset bound to the two schemas in ``schemas/``, one inlet that requires
authentication and one that does not. ``provisioned=False`` starts from an empty sandbox instead (no tenant field
groups, schemas, datasets or inlets: create them through the platform APIs). Limits default to AEP's documented
guardrails
(EN ``help/ingestion/streaming-ingestion/overview.md``, APIS ``data-ingestion.yaml``).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emulators.faults import FaultProfile
from emulators.options import parse_bool, parse_json_object

# The scope string Adobe's own Kafka connector and the AEP Developer Console cURL use (adobe-aep-api.md §1).
AEP_SCOPES = ("openid", "AdobeID", "read_organizations", "additional_info.projectedProductContext", "session")


@dataclass
class AdobeConfig:
    org_id: str = "EMULATOR0ORG@AdobeOrg"
    # client_id -> client_secret; the client_id is also the x-api-key of platform calls.
    clients: dict[str, str] = field(default_factory=lambda: {"emulator-client-id": "emulator-client-secret"})
    allowed_scopes: tuple[str, ...] = AEP_SCOPES
    tenant_id: str = "capillarydemo"
    sandbox: str = "prod"
    provisioned: bool = True
    profile_dataset_id: str = "65f0c0ffee0000000000a001"
    event_dataset_id: str = "65f0c0ffee0000000000a002"
    auth_inlet_id: str = "a1" * 32
    open_inlet_id: str = "b2" * 32
    token_lifetime_seconds: float = 86400.0
    # EN sources http.md answers 401 for a missing *or* invalid/expired token; EN
    # streaming-multiple-messages.md lists 403 for invalid/expired ones. 401 by default, 403 selectable.
    invalid_token_status: int = 401
    requests_per_second: float = 1000.0
    messages_per_second: float = 10000.0
    sync_validation_per_minute: float = 60.0
    sync_validation_supported: bool = True
    max_request_bytes: int = 1_000_000
    validate: bool = True
    store_messages: bool = True
    max_errors_per_message: int = 5
    database: str = ":memory:"
    faults: dict[str, Any] | None = None

    @property
    def datasets(self) -> dict[str, str]:
        """The seeded datasets (``provisioned``): dataset id -> name of its seed file in ``schemas/``."""
        return {
            self.profile_dataset_id: "capillary-loyalty-profile",
            self.event_dataset_id: "capillary-loyalty-events",
        }

    @property
    def inlets(self) -> dict[str, bool]:
        """The seeded inlets (``provisioned``): inlet id -> whether it requires an ``Authorization`` header."""
        return {self.auth_inlet_id: True, self.open_inlet_id: False}

    def fault_profile(self) -> FaultProfile:
        return FaultProfile.from_dict(self.faults)


_HELP = {
    "org_id": "IMS org id the inlets and datasets belong to",
    "clients": "OAuth client as CLIENT_ID:CLIENT_SECRET (repeatable; replaces the default client)",
    "allowed_scopes": "comma-separated scopes IMS grants; requesting any other scope is invalid_scope",
    "tenant_id": "tenant id: schema $id namespace and the _{tenant} field group",
    "sandbox": "the one sandbox name platform APIs accept (x-sandbox-name)",
    "provisioned": "false: start from an empty sandbox (no tenant schemas, datasets or inlets) to provision by API",
    "profile_dataset_id": "dataset bound to the Individual Profile schema",
    "event_dataset_id": "dataset bound to the ExperienceEvent schema",
    "auth_inlet_id": "inlet (connection) id that requires Authorization",
    "open_inlet_id": "inlet (connection) id that does not require Authorization",
    "token_lifetime_seconds": "lifetime of issued IMS access tokens",
    "invalid_token_status": "DCS status for an invalid/expired/revoked token on an authenticated inlet (401 or 403)",
    "requests_per_second": "DCS request rate limit per org (429 beyond it)",
    "messages_per_second": "DCS message rate limit per org (429 beyond it)",
    "sync_validation_per_minute": "syncValidation=true request limit per inlet and minute",
    "sync_validation_supported": "false: syncValidation=true answers 501 (not a VA7 endpoint)",
    "max_request_bytes": "request body size limit of the DCS endpoints (413 beyond it)",
    "validate": "XDM-validate accepted messages (false: count and store only, for benchmarks; not syncValidation)",
    "store_messages": "keep accepted messages for inspection (false: count them only, for benchmarks)",
    "max_errors_per_message": "schema violations reported per message before validation stops",
    "database": "SQLite file storing received messages (:memory: keeps them in memory)",
    "faults": "fault profile as JSON, or @path to a JSON file (see emulators.faults)",
}


def _parse_client(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        msg = "expected CLIENT_ID:CLIENT_SECRET"
        raise argparse.ArgumentTypeError(msg)
    return client_id, secret


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--adobe-<field>`` option per ``AdobeConfig`` field; unset options keep the defaults."""
    group = parser.add_argument_group("Adobe emulator")
    for f in dataclasses.fields(AdobeConfig):
        option = "--adobe-" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f"adobe_{f.name}", "default": None, "help": _HELP[f.name]}
        if f.name == "clients":
            kwargs.update(type=_parse_client, action="append", metavar="ID:SECRET")
        elif f.name == "allowed_scopes":
            kwargs.update(type=lambda v: tuple(s for s in v.replace(" ", ",").split(",") if s))
        elif f.name == "faults":
            kwargs.update(type=parse_json_object, metavar="JSON|@FILE")
        elif f.name == "invalid_token_status":
            kwargs.update(type=int, choices=(401, 403))
        elif f.type == "bool":
            kwargs.update(type=parse_bool, metavar="BOOL")
        elif f.type == "float":
            kwargs["type"] = float
        elif f.type == "int":
            kwargs["type"] = int
        group.add_argument(option, **kwargs)


def config_from_cli(args: argparse.Namespace) -> AdobeConfig:
    overrides = {}
    for f in dataclasses.fields(AdobeConfig):
        value = getattr(args, f"adobe_{f.name}", None)
        if value is not None:
            overrides[f.name] = dict(value) if f.name == "clients" else value
    return AdobeConfig(**overrides)
