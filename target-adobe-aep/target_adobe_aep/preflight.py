"""Preflight: the settings checked against Adobe before a record is read, each failure naming the setting to fix.

A mistyped tenant, org, schema or dataset id makes every record fail; found after the fact, the run has filled
the dead letter (or AEP's failed batches) and moved its bookmarks. The target runs these checks before it reads
its input (``check_connection``) and when a stream's SCHEMA arrives (``check_mapping``); ``target-adobe-aep-admin
check`` runs them alone. What is checked:

- an IMS access token is issued for the client credentials;
- the Schema Registry's ``GET /stats`` names the configured ``tenant_id`` (EN help/xdm/api/getting-started.md);
- each configured schema exists (the registry's lookup, or its ``schema_files`` entry);
- each configured dataset exists and its Catalog ``schemaRef`` is the configured schema (EN
  help/catalog/api/look-up-object.md);
- the inlet takes the org, dataset and schema: one message per destination to the single-message endpoint with
  ``syncValidation=true`` whose XDM entity is deliberately invalid (``_id`` a number). DCS checks the envelope
  first ("Message has an absent or wrong ims org in the header", "Message has unknown xdm format", EN
  help/ingestion/tutorials/streaming-multiple-messages.md), then the entity; a failed synchronous validation
  answers 400 with ``report.cause._streamingValidation`` and drops the record (EN
  help/ingestion/quality/streaming-validation.md), so nothing is ingested. Where synchronous validation is not
  offered (501) the probe is skipped: the first batch's rejections stop the run instead (``rejections.py``);
- every XDM path a stream's mapping can write exists in its dataset's schema with a type that takes what the
  mapping writes there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import requests

from target_adobe_aep.connection import ConfigError, RetriesExhausted
from target_adobe_aep.dcs import PublishError, envelope_error_settings
from target_adobe_aep.ims import AuthError
from target_adobe_aep.mapping import MappingError, StreamMapping
from target_adobe_aep.platform import CATALOG, REGISTRY, gateway_error
from target_adobe_aep.xdm_schema import unwritable

if TYPE_CHECKING:
    from target_adobe_aep.target import TargetAdobeAEP

logger = logging.getLogger(__name__)

CREDENTIALS = ("client_id", "client_secret", "scopes", "ims_url")
DESTINATIONS = ("profile", "event")


@dataclass(frozen=True)
class Finding:
    """One problem and the settings to fix."""

    settings: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{' / '.join(self.settings)}: {self.message}"


class PreflightError(ConfigError):
    """The configuration does not work against Adobe; nothing was read or sent."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = list(dict.fromkeys(findings))  # destinations sharing a refusal share its finding
        super().__init__("configuration check failed: " + "; ".join(map(str, self.findings)))


def refusal(what: str, error: AuthError) -> Finding:
    """The finding of a platform API's refusal: the setting its gateway error code points at."""
    setting, explanation = gateway_error(error.detail) or ("client_id", str(error))
    return Finding((setting,), f"{what} refused the request: {explanation}")


class Preflight:
    """The checks, run with the target's own services (token, platform client, schemas, publisher)."""

    def __init__(self, target: TargetAdobeAEP, report: Callable[[str], None] = logger.info) -> None:
        self.target = target
        self.config = target.config
        self.report = report  # each check that passed, as one line

    def destinations(self) -> list[str]:
        """The destinations (``profile``, ``event``) whose dataset or schema is configured."""
        configured = self.config.get
        return [kind for kind in DESTINATIONS if configured(f"{kind}_dataset_id") or configured(f"{kind}_schema_id")]

    # -- before reading input -------------------------------------------------------------------------------

    def check_connection(self) -> None:
        """Token, tenant, schemas, datasets and inlet; raises ``PreflightError`` listing every problem found."""
        findings: list[Finding] = []
        online = bool(self.config.get("client_id"))
        if online:
            self._check_token()  # nothing else can be asked without one
            findings, online = self._check_tenant()  # a refusal (org, API key, sandbox) would refuse every call
        else:
            self.report("no client_id: the tenant, the schemas in the registry and the datasets are not checked")
        for kind in self.destinations():
            findings += self._check_destination(kind, online)
        if findings:
            raise PreflightError(findings)

    def _check_token(self) -> None:
        try:
            self.target.tokens.token()
        except AuthError as exc:
            raise PreflightError([Finding(CREDENTIALS, str(exc))]) from None
        self.report(f"IMS issued an access token for client {self.config['client_id']}")

    def _get(
        self, path: str, what: str, params: dict[str, Any] | None = None
    ) -> tuple[requests.Response | None, list[Finding]]:
        """A platform answer, or the findings of a refusal (wrong org, API key, credentials)."""
        try:
            return self.target.platform.get(path, what, params=params), []
        except AuthError as exc:
            return None, [refusal(what, exc)]

    def _check_tenant(self) -> tuple[list[Finding], bool]:
        """The findings about org and tenant, and whether the platform answers at all (no refusal)."""
        response, findings = self._get(f"{REGISTRY}/stats", "Schema Registry")
        if response is None:
            return findings, False
        if response.status_code == 404:
            sandbox = self.config["sandbox_name"]
            return [Finding(("sandbox_name",), f"the Schema Registry knows no sandbox {sandbox!r}")], False
        if response.status_code != 200:
            message = f"GET /stats answered HTTP {response.status_code}: {response.text[:200]}"
            return [Finding(("org_id", "sandbox_name"), message)], False
        tenant = response.json().get("tenantId")
        if tenant != self.config.get("tenant_id"):
            message = f"the org's tenant is {tenant!r} (Schema Registry /stats), not {self.config.get('tenant_id')!r}"
            return [Finding(("tenant_id",), message)], True
        self.report(f"tenant {tenant!r} of org {self.config['org_id']} (sandbox {self.config['sandbox_name']!r})")
        return [], True

    def _check_destination(self, kind: str, online: bool) -> list[Finding]:
        dataset_setting, schema_setting = f"{kind}_dataset_id", f"{kind}_schema_id"
        missing = [name for name in (dataset_setting, schema_setting) if not self.config.get(name)]
        if missing:
            message = f"the {kind} destination needs both {dataset_setting} and {schema_setting}"
            return [Finding(tuple(missing), message)]
        dataset_id, schema_id = self.config[dataset_setting], self.config[schema_setting]
        findings = []
        if self.target.schemas.available(schema_id):
            try:
                self.target.schemas.schema(schema_id)
                self.report(f"schema {schema_id} ({schema_setting}) exists")
            except ConfigError as exc:
                findings.append(Finding((schema_setting,), str(exc)))
            except AuthError as exc:
                findings.append(refusal("Schema Registry", exc))
        else:
            self.report(f"schema {schema_id} ({schema_setting}) is not checked: no schema_files entry, no client_id")
        if online:
            findings += self._check_dataset(kind, dataset_id, schema_id)
        if not self.config["dry_run"] and self.config.get("inlet_url"):
            findings += self._probe_inlet(kind, dataset_id, schema_id)
        return findings

    def _check_dataset(self, kind: str, dataset_id: str, schema_id: str) -> list[Finding]:
        setting = f"{kind}_dataset_id"
        response, findings = self._get(
            f"{CATALOG}/dataSets/{dataset_id}", "Catalog", params={"properties": "schemaRef"}
        )
        if response is None:
            return findings
        if response.status_code != 200:
            return [Finding((setting,), f"Catalog has no dataset {dataset_id} (HTTP {response.status_code})")]
        bound = (response.json().get(dataset_id) or {}).get("schemaRef", {}).get("id")
        if bound != schema_id:
            return [Finding((setting, f"{kind}_schema_id"), f"dataset {dataset_id} is bound to schema {bound}, "
                            f"not {schema_id}")]  # fmt: skip
        self.report(f"dataset {dataset_id} ({setting}) is bound to schema {schema_id}")
        return []

    def _probe_inlet(self, kind: str, dataset_id: str, schema_id: str) -> list[Finding]:
        envelope = self.target.envelope(kind)
        probe = envelope.wrap(orjson.dumps({"_id": 0}))  # invalid on purpose: never ingested
        try:
            response = self.target.publisher.validate_one(probe, self.target.flow_id(kind))
        except (AuthError, PublishError) as exc:
            named = ("inlet_auth_required",) if isinstance(exc, PublishError) else (*CREDENTIALS, "org_id")
            return [Finding(named, f"the inlet refused the token: {exc}")]
        except RetriesExhausted as exc:
            return [Finding(("inlet_url",), f"the inlet could not be probed: {exc}")]
        text, status = response.text, response.status_code
        taken = f"the inlet takes org {self.config.get('org_id')}, dataset {dataset_id} and schema {schema_id}"
        if status == 400 and "_streamingValidation" in text:  # envelope accepted, entity refused: as intended
            self.report(taken)
            return []
        if status == 200:  # envelope accepted; validation did not run at once, so AEP keeps a failed record
            logger.warning("%s, but validated the invalid probe message asynchronously: %s", taken, text[:200])
            return []
        if status == 501:
            logger.warning("The inlet offers no synchronous validation (HTTP 501): the %s destination is checked "
                           "by the answers to the first batch instead", kind)  # fmt: skip
            return []
        if status == 404:
            return [Finding(("inlet_url",), f"no such inlet: {text[:200]}")]
        settings = envelope_error_settings(text, kind)
        if settings is not None:
            return [Finding(settings, f"the inlet refused the {kind} message envelope: {text[:300]}")]
        return [Finding(("inlet_url",), f"the inlet answered HTTP {status}: {text[:300]}")]

    # -- when a stream's SCHEMA arrives ---------------------------------------------------------------------

    def check_mapping(self, mapping: StreamMapping) -> None:
        """Every path ``mapping`` can write exists in its dataset's schema and takes what it writes there."""
        schema_setting = f"{mapping.target}_schema_id"
        schema_id = self.config.get(schema_setting)
        if not schema_id or not self.target.schemas.available(schema_id):
            return
        try:
            schema = self.target.schemas.schema(schema_id)
        except AuthError as exc:
            raise PreflightError([refusal("Schema Registry", exc)]) from None
        except ConfigError as exc:
            raise PreflightError([Finding((schema_setting,), str(exc))]) from None
        problems = unwritable(schema, mapping.written)
        if problems:
            tenant = f"_{self.config.get('tenant_id')}"
            settings: tuple[str, ...] = ("tenant_id",) if all(p.startswith(tenant) for p in problems) else ()
            settings += (schema_setting, f"mappings.{mapping.stream}")
            message = (
                f"mapping {mapping.origin} of stream {mapping.stream!r} writes what schema {schema_id} does not "
                f"take: {', '.join(problems)}"
            )
            raise PreflightError([Finding(settings, message)])
        self.report(f"every path mapping {mapping.origin} writes is in schema {schema_id}")

    def check_mappings(self, streams: Iterable[str]) -> None:
        """``check_mapping`` for each stream's mapping (built-in preset or the mappings setting)."""
        findings: list[Finding] = []
        for stream in streams:
            try:
                mapping = self.target.compiled_mapping(stream)
                if mapping.target != "none":
                    self.check_mapping(mapping)
            except PreflightError as exc:
                findings += exc.findings
            except (ConfigError, MappingError) as exc:
                findings.append(Finding((f"mappings.{stream}",), str(exc)))
        if findings:
            raise PreflightError(findings)
