"""What the end-to-end tests run and compare.

``Pipeline`` runs ``meltano`` commands in the repository root against one pair of emulators, with its own
Meltano system database (so its own state). ``canonical_records`` reads what the Capillary emulator holds
(its admin API: plain fields, UTC times), ``stored_records`` what the Adobe emulator accepted; both sides
name each record by the same key, built from the emulator's data on one side and from the stored XDM on
the other, never from the plugins' own output.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pipeline import ROOT, RunResult, meltano, pipeline_env

from emulators.adobe import ADOBE
from emulators.capillary import ADMIN
from emulators.capillary.render import Clock
from emulators.server import BackgroundServer
from tap_capillary.tap import STREAM_TYPES

MELTANO_BIN = os.environ.get("MELTANO_BIN") or str(ROOT / ".venv-meltano" / "bin" / "meltano")
STATE_ID = "dev:tap-capillary-to-target-adobe-aep"
STREAMS = tuple(stream_type.name for stream_type in STREAM_TYPES)
# Every connection to a non-loopback host goes to a closed loopback port and fails (tests are offline);
# uv installs from its cache only; Meltano sends no usage statistics.
OFFLINE_ENV = {
    **dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"), "http://127.0.0.1:9"),
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "UV_OFFLINE": "1",
    "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
}
Key = tuple


def utc_text(value: str | None) -> str | None:
    """An RFC 3339 time as ``YYYY-MM-DDTHH:MM:SSZ`` (the emulator's canonical form), None stays None."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- the Capillary emulator's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Canonical:
    """One record the tap should extract: its stream, its key, its replication time and the emulator's data."""

    stream: str
    key: Key
    at: str
    data: dict[str, Any] = field(compare=False, hash=False)
    customer: dict[str, Any] | None = field(default=None, compare=False, hash=False)


def canonical_records(capillary: BackgroundServer) -> list[Canonical]:
    """Every record of every stream the emulator holds for active customers (merged and deleted customers
    give item-level errors and are skipped, as the emulator's README explains), and every store."""
    admin = capillary.app[ADMIN]

    def read() -> tuple[list[dict], list[dict]]:
        customers = [admin.customer(customer_id) for customer_id in admin.changed_customers(0)]
        stores = admin.store.select("SELECT code, last_updated_on FROM entities WHERE type = 'STORE' ORDER BY id")
        return customers, stores

    customers, stores = capillary.call(read)
    records = []
    for s in stores:
        updated = Clock.utc(s["last_updated_on"])
        records.append(Canonical("stores", (s["code"], updated), updated, s))
    for c in customers:
        if c["status"] != "ACTIVE":
            continue
        cid = str(c["id"])
        records.append(Canonical("customers", (cid, c["updated_on"]), c["updated_on"], c, c))
        for t in c["transactions"]:
            records.append(Canonical("transactions", (str(t["id"]),), t["auto_update_time"], t, c))
        for e in c["ledger"]:
            # One ledger row is one ledger event with a single entry (entry_index 0).
            records.append(Canonical("points_ledger", (f"{e['id']}-0",), e["created_on"], e, c))
        for t in c["tier_changes"]:
            records.append(Canonical("tier_history", (cid, t["changed_on"], t["to"]), t["changed_on"], t, c))
        for r in c["redemptions"]:
            records.append(Canonical("redemptions", ("POINTS", r["redemption_id"]), r["redeemed_on"], r, c))
        for k in c["coupons"]:
            if k["redeemed_on"]:
                records.append(Canonical("redemptions", ("COUPON", k["code"]), k["redeemed_on"], k, c))
            changed = max(filter(None, (k["issued_on"], k["redeemed_on"])))
            records.append(Canonical("coupons", (str(k["id"]), k["redeemed_on"]), changed, k, c))
        for r in c["rewards"]:
            records.append(
                Canonical("reward_issuals", (cid, str(r["reward_id"]), r["issued_on"]), r["issued_on"], r, c)
            )
    return records


def keys(records: Iterable[Canonical | Stored], since: str | None = None) -> Counter:
    """(stream, key) counts, of the canonical records changed at or after ``since`` if given."""
    return Counter(
        (r.stream, r.key)
        for r in records
        if since is None or not isinstance(r, Canonical) or epoch(r.at) >= epoch(since)
    )


def uncovered(records: Iterable[Canonical], singer_state: dict[str, Any]) -> Counter:
    """(stream, key) counts of the canonical records ``singer_state`` does not cover: those a run resuming from it
    sends (again). The tap reads each customer found in a discovery window for the whole pass, and a window
    bookmark is the end of the last completed window, so a stream's bookmark covers the records of the customers
    last changed before it (stores: the stores changed before it); a stream without one covers nothing."""
    marks = {stream: epoch(b["replication_key_value"]) for stream, b in bookmarks(singer_state).items()}

    def covered(record: Canonical) -> bool:
        changed = record.customer["updated_on"] if record.customer is not None else record.at
        return record.stream in marks and epoch(changed) < marks[record.stream]

    return Counter((r.stream, r.key) for r in records if not covered(r))


def covered_but_missing(records: Iterable[Canonical], singer_state: dict[str, Any], delivered: Counter) -> Counter:
    """The records ``singer_state`` covers that are not in ``delivered`` (AEP, the dead letter): a STATE must never
    cover one of them."""
    records = list(records)
    return (keys(records) - uncovered(records, singer_state)) - Counter(set(delivered))


def repeated(counter: Counter) -> Counter:
    """The keys ``counter`` holds more than once, each with its extra count."""
    return Counter({key: count - 1 for key, count in counter.items() if count > 1})


def differences(expected: Counter, stored: Counter, limit: int = 10) -> dict[str, list]:
    """What is missing from ``stored`` and what it holds beyond ``expected`` (duplicates included), a few of each."""
    return {
        "missing": sorted(expected - stored)[:limit],
        "unexpected": sorted(stored - expected)[:limit],
        "counts": [sum(expected.values()), sum(stored.values())],
    }


def per_stream(counter: Counter) -> dict[str, int]:
    totals: Counter = Counter()
    for (stream, _), count in counter.items():
        totals[stream] += count
    return dict(totals)


# -- the Adobe emulator's side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """One message AEP accepted into a dataset: the stream it carries, its key and its XDM."""

    stream: str
    key: Key
    xdm_id: str
    dataset: str
    entity: dict[str, Any] = field(compare=False, hash=False)


# Which object under _{tenant}.capillary tells an ExperienceEvent's stream (profiles have none of them).
EVENT_DETAILS = {
    "transaction": "transactions",
    "pointsLedger": "points_ledger",
    "tierChange": "tier_history",
    "redemption": "redemptions",
    "coupon": "coupons",
    "reward": "reward_issuals",
    "store": "stores",
}


def stored_key(stream: str, xdm: dict[str, Any], tenant: str) -> Key:
    capillary = xdm[f"_{tenant}"]["capillary"]
    customer_id = capillary.get("customerId")
    timestamp = utc_text(xdm.get("timestamp"))
    if stream == "customers":
        return (customer_id, utc_text(capillary.get("updatedOn")))
    if stream == "transactions":
        return (capillary["transaction"]["transactionId"],)
    if stream == "points_ledger":
        return (capillary["pointsLedger"]["entryId"],)
    if stream == "tier_history":
        return (customer_id, timestamp, capillary["tierChange"]["toTier"])
    if stream == "redemptions":
        return (capillary["redemption"]["redemptionType"], capillary["redemption"]["redemptionId"])
    if stream == "coupons":
        return (capillary["coupon"]["couponId"], utc_text(capillary["coupon"].get("redeemedOn")))
    if stream == "reward_issuals":
        return (customer_id, capillary["reward"]["rewardId"], timestamp)
    return (capillary["store"]["code"], timestamp)


def _path(xdm: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(xdm, list) and part.isdigit():
            xdm = xdm[int(part)] if int(part) < len(xdm) else None
        else:
            xdm = xdm.get(part) if isinstance(xdm, dict) else None
    return xdm


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list) and isinstance(actual, list):
        # List items are compared on the keys the expectation names.
        return len(expected) == len(actual) and all(
            _same(e, a) if not isinstance(e, dict) else all(_same(e[k], a.get(k)) for k in e)
            for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        # Capillary's v1.1 and ledger APIs send amounts and points with two decimals.
        return abs(expected - actual) <= 0.0051
    return expected == actual


def expected_xdm(record: Canonical, tenant: str) -> dict[str, Any]:
    """XDM path -> the value the stored entity must hold, from the emulator's data (the presets' documented
    mapping; ``None`` means the path must be absent)."""
    d, c = record.data, record.customer
    cap = f"_{tenant}.capillary"
    if record.stream == "stores":
        return {"eventType": "loyalty.storeUpdated"}
    if record.stream == "customers":
        email, mobile = d["email"], d["mobile"]
        return {
            "identityMap.CapillaryCustomerId": [
                {"id": str(d["id"]), "primary": True, "authenticatedState": "ambiguous"}
            ],
            "identityMap.Email.0.id": email.lower() if email else None,
            "identityMap.Phone.0.id": mobile,
            "personalEmail.address": email,
            "mobilePhone.number": mobile,
            "person.name.firstName": d["firstname"],
            "person.name.lastName": d["lastname"],
            "person.gender": d["gender"].lower().replace("other", "non_specific"),
            "loyalty.points": d["loyalty_points"],
            "loyalty.lifetimePoints": d["lifetime_points"],
            "loyalty.lifetimePurchases": d["lifetime_purchases"],
            "loyalty.tier": d["current_slab"],
            "loyalty.program": str(d["program_id"]),  # Capillary's v1.1 points_summary has programId only
            "loyalty.loyaltyID": [str(d["id"])],
            "loyalty.joinDate": d["registered_on"],
            f"{cap}.registeredStore": d["registered_store_code"],
            f"{cap}.externalId": d["external_id"],
        }
    identity = {"identityMap.CapillaryCustomerId.0.id": str(c["id"]), f"{cap}.customerId": str(c["id"])}
    if record.stream == "transactions":
        is_return = d["type"] == "RETURN"
        return {
            **identity,
            "timestamp": d["billing_time"],
            "eventType": "commerce.backofficeCreditMemoIssued" if is_return else "commerce.purchases",
            "commerce.purchases.value": None if is_return else 1,
            "commerce.order.purchaseID": d["number"],
            "commerce.order.priceTotal": d["amount"],
            "commerce.order.discountAmount": d["discount"],
            "commerce.order.currencyCode": d["currency"],
            "commerce.order.refundTotal": d["amount"] if is_return else None,
            "commerce.order.returns": {"returnID": str(d["id"]), "purchaseID": d["number"]} if is_return else None,
            "productListItems": [
                {"SKU": line["item_code"], "quantity": line["qty"], "priceTotal": line["amount"]}
                | {"returnItem": {"returnQuantityReceived": line["qty"]} if is_return else None}
                for line in d["line_items"]
            ],
            f"{cap}.transaction.billType": d["type"],
            f"{cap}.transaction.storeCode": d["store_code"],
            f"{cap}.transaction.tillCode": d["till_code"],
            f"{cap}.transaction.grossAmount": d["gross_amount"],
        }
    if record.stream == "points_ledger":
        event_types = {
            "CREDIT": "loyalty.pointsCredited",
            "DEBIT": "loyalty.pointsDebited",
            "OPENING_BALANCE": "loyalty.pointsOpeningBalance",
        }
        return {
            **identity,
            "timestamp": d["created_on"],
            "eventType": event_types[d["entry_type"]],
            f"{cap}.pointsLedger.entryType": d["entry_type"],
            f"{cap}.pointsLedger.eventName": d["event_name"],
            f"{cap}.pointsLedger.points": d["points"],
            f"{cap}.pointsLedger.programId": str(d["program_id"]),
            f"{cap}.pointsLedger.transactionId": d["transaction_id"] and str(d["transaction_id"]),
        }
    if record.stream == "tier_history":
        # Capillary's slab_history types (capillary-api.md: "type (e.g. RENEW)").
        event_types = {
            "UPGRADE": "loyalty.tierUpgraded",
            "DOWNGRADE": "loyalty.tierDowngraded",
            "RENEW": "loyalty.tierRenewed",
        }
        return {
            **identity,
            "eventType": event_types[d["type"]],
            f"{cap}.tierChange.fromTier": d["from"],
            f"{cap}.tierChange.changeType": d["type"],
            f"{cap}.tierChange.programId": str(d["program_id"]),
        }
    if record.stream == "redemptions" and record.key[0] == "POINTS":
        return {
            **identity,
            "timestamp": d["redeemed_on"],
            "eventType": "loyalty.pointsRedeemed",
            f"{cap}.redemption.points": d["points"],
            f"{cap}.redemption.billNumber": d["bill_number"],
        }
    if record.stream == "redemptions":
        return {
            **identity,
            "timestamp": d["redeemed_on"],
            "eventType": "loyalty.couponRedeemed",
            f"{cap}.redemption.couponCode": d["code"],
        }
    if record.stream == "coupons":
        return {
            **identity,
            "timestamp": d["issued_on"],
            "eventType": "loyalty.couponIssued",
            f"{cap}.coupon.couponCode": d["code"],
            f"{cap}.coupon.seriesId": str(d["series_id"]),
            f"{cap}.coupon.status": "REDEEMED" if d["redeemed_on"] else "ISSUED",
            f"{cap}.coupon.issuedOn": d["issued_on"],
            f"{cap}.coupon.validTill": d["valid_till"],
        }
    return {**identity, "eventType": "loyalty.rewardIssued" if d["success"] else "loyalty.rewardIssueFailed"}


def xdm_mismatches(records: Iterable[Canonical], stored: Iterable[Stored], tenant: str) -> dict[str, str]:
    """Per stream and XDM path whose stored values differ from ``expected_xdm``: how many and one example."""
    by_key = {(r.stream, r.key): r for r in records}
    found: dict[str, list[str]] = {}
    for s in stored:
        record = by_key[(s.stream, s.key)]
        for path, expected in expected_xdm(record, tenant).items():
            actual = _path(s.entity, path)
            if path.endswith(("timestamp", "Date", "On", "validTill")) and isinstance(actual, str):
                actual = utc_text(actual)
            if not _same(expected, actual):
                example = f"{record.key}: expected {expected!r}, stored {actual!r}"
                found.setdefault(f"{s.stream} {path}", []).append(example)
    return {where: f"{len(examples)}x, e.g. {examples[0]}" for where, examples in found.items()}


def dataset_sizes(adobe: BackgroundServer) -> dict[str, int]:
    """Accepted messages per dataset: a mark to read only what a later run adds."""
    counts = adobe.call(adobe.app[ADOBE].store.counts)
    return {dataset: numbers["accepted"] for dataset, numbers in counts.items()}


def stored_records(adobe: BackgroundServer, after: dict[str, int] | None = None) -> list[Stored]:
    """Accepted messages of every dataset (those after the ``after`` mark if given), by stream and key."""
    config = adobe.config
    store = adobe.app[ADOBE].store
    result = []
    for dataset in list(adobe.app[ADOBE].sandbox.datasets):
        offset = (after or {}).get(dataset, 0)
        for xdm in adobe.call(store.messages, dataset, 1_000_000, offset):
            capillary = xdm[f"_{config.tenant_id}"]["capillary"]
            stream = next((s for detail, s in EVENT_DETAILS.items() if detail in capillary), "customers")
            result.append(Stored(stream, stored_key(stream, xdm, config.tenant_id), xdm["_id"], dataset, xdm))
    return result


def dead_lettered(path: Path, tenant: str, skip: int = 0) -> Counter:
    """(stream, key) counts of a dead letter's entries after its first ``skip`` lines, keyed from their XDM as
    ``stored_key`` keys AEP's messages (the entries of a run's refused records hold ``xdm``); every line must be a
    JSON object."""
    if not path.exists():
        return Counter()
    entries = [json.loads(line) for line in path.read_text().splitlines()[skip:]]
    return Counter((e["stream"], stored_key(e["stream"], e["xdm"], tenant)) for e in entries)


def failed_messages(adobe: BackgroundServer) -> int:
    """Messages DCS accepted that then failed XDM validation (AEP's failed batches)."""
    return sum(numbers["failed"] for numbers in adobe.call(adobe.app[ADOBE].store.counts).values())


def customers_mapping_without_gender_translation() -> dict:
    """The customers preset with its gender rule simplified to "lowercase it", a plausible mistake in a brand's
    own mapping: Capillary's genders are Female, Male and Other, and XDM's ``person.gender`` enum has ``female``
    and ``male`` but no ``other`` (the preset maps it to ``non_specific``). Every customer whose gender is Other
    becomes invalid XDM; everyone else stays valid."""
    preset = json.loads((resources.files("target_adobe_aep") / "mappings" / "customers.json").read_text())
    rule = next(r for r in preset["fields"] if r.get("to") == "person.gender")
    for key in ("map", "default"):
        rule.pop(key)
    return preset


# -- running Meltano -----------------------------------------------------------------------------------------


def new_pipeline(capillary: BackgroundServer, adobe: BackgroundServer, workdir: Path) -> Pipeline:
    """A pipeline against these emulators with ``start_date`` a day before the Capillary emulator's history."""
    config = capillary.config
    start = datetime.fromisoformat(config.anchor_time) - timedelta(days=config.history_days + 1)
    return Pipeline(capillary, adobe, workdir, start)


@dataclass
class Pipeline:
    """``meltano`` commands in the repository root against these emulators, with state in ``workdir``."""

    capillary: BackgroundServer
    adobe: BackgroundServer
    workdir: Path
    start: datetime
    commands: int = 0
    meltano_bin: str = MELTANO_BIN

    def __post_init__(self) -> None:
        # Meltano writes each run's config, catalog and state files to <sys dir>/run/<plugin>/ and deletes them
        # afterwards, so two runs in one project (a test and the demo, or another invocation) break each other.
        # A system directory of its own, sharing the installed plugins, keeps this pipeline's files apart.
        self.sys_dir = self.workdir / ".meltano"
        self.sys_dir.mkdir()
        for plugin_type in ("extractors", "loaders"):
            (self.sys_dir / plugin_type).symlink_to(ROOT / ".meltano" / plugin_type, target_is_directory=True)

    def env(self, **extra: str) -> dict[str, str]:
        return pipeline_env(
            self.capillary,
            self.adobe,
            self.workdir,
            self.start,
            MELTANO_SYS_DIR_ROOT=str(self.sys_dir),
            **OFFLINE_ENV,
            **extra,
        )

    def meltano(self, *args: str, on_line: Callable[[str], None] | None = None, **extra: str) -> RunResult:
        """Any meltano command; its output goes to ``workdir/<n>-<command>.log``."""
        self.commands += 1
        log = self.workdir / f"{self.commands:02d}-{'-'.join(a.strip('-') for a in args[:2])}.log"
        return meltano(self.meltano_bin, args, self.env(**extra), log, on_line)

    def run(self, *options: str, on_line: Callable[[str], None] | None = None, **extra: str) -> RunResult:
        """``meltano run [options] tap-capillary target-adobe-aep``."""
        return self.meltano("run", *options, "tap-capillary", "target-adobe-aep", on_line=on_line, **extra)

    def state(self) -> dict[str, Any]:
        """The Singer state Meltano holds for the pipeline (``meltano state get``), {} when there is none."""
        output = subprocess.run(
            [MELTANO_BIN, "state", "get", STATE_ID],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return json.loads(output).get("singer_state", {}) if output else {}

    def set_state(self, singer_state: dict[str, Any]) -> None:
        result = self.meltano("state", "set", "--force", STATE_ID, json.dumps({"singer_state": singer_state}))
        assert result.returncode == 0, f"meltano state set failed, log: {result.log_path}"

    def clear_state(self) -> None:
        result = self.meltano("state", "clear", "--force", STATE_ID)
        assert result.returncode == 0, f"meltano state clear failed, log: {result.log_path}"


def dev_environment() -> dict[str, Any]:
    """meltano.yml's ``dev`` environment: the emulators' fixed settings (``config``) and secrets (``env``)."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return next(env for env in project["environments"] if env["name"] == "dev")


def dev_config(plugin_type: str, name: str) -> dict[str, Any]:
    """A plugin's ``config`` in the ``dev`` environment."""
    plugins = dev_environment()["config"]["plugins"][plugin_type]
    return next(p for p in plugins if p["name"] == name)["config"]


def bookmarks(singer_state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return singer_state.get("bookmarks", {})
