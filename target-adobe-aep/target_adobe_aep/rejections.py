"""When rejected records stop the run instead of going to the dead letter.

A record refused for its own data (a malformed currency code) belongs in the dead letter, and the run goes on. A
refusal no record can cure comes from a setting or a mapping: every record would share it, so dead-lettering
them would empty the run into the dead letter while its bookmarks move on. Those stop the run at once — the
batch is neither dead-lettered nor covered by a STATE, so the next run sends it again once the setting is fixed:

- DCS refusing a message envelope (wrong org, or a dataset/schema pair the inlet does not take,
  EN help/ingestion/tutorials/streaming-multiple-messages.md): the envelope is the same for every message;
- local validation refusing the tenant namespace itself (``_{tenant_id}`` is not in the schema);
- every message of one request of at least ``FIRST_RECORDS`` messages refused for one reason (a smaller request,
  such as a batch's last, may hold a few records sharing one data problem by chance; a refusal shaped like a
  setting's, above, stops the run whatever the request's size);
- every one of a stream's first ``FIRST_RECORDS`` records refused for one reason.

Beyond those, a stream whose refused share exceeds ``max_rejected_percent`` (once ``SHARE_SAMPLE`` of its records
have an outcome), or a run with more than ``max_rejected_records`` dead letters, stops after writing them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from target_adobe_aep.dcs import envelope_error_settings

FIRST_RECORDS = 10
SHARE_SAMPLE = 20


class SystemicRejection(RuntimeError):
    """Records are refused for a reason no record can cure; nothing of the batch was dead-lettered."""


class TooManyRejectedRecords(RuntimeError):
    """More records were dead-lettered than ``max_rejected_records`` / ``max_rejected_percent`` allow."""


@dataclass
class _StreamTally:
    outcomes: int = 0  # records accepted, written (dry run) or refused
    refused: int = 0
    first_reasons: Counter = field(default_factory=Counter)  # of the first FIRST_RECORDS outcomes' refusals


def setting_cause(reason: str, kind: str, tenant_id: str) -> tuple[str, ...] | None:
    """The settings behind a refusal that can only come from them: a DCS envelope error, or validation refusing
    the tenant namespace (``xdm must not contain {'_acme'} properties``); None for other refusals."""
    envelope = envelope_error_settings(reason, kind)
    if envelope is not None:
        return envelope
    if tenant_id and f"'_{tenant_id}'" in reason and "must not contain" in reason:
        return ("tenant_id", f"{kind}_schema_id")
    return None


def likely_settings(reason: str, kind: str, stream: str, tenant_id: str) -> tuple[str, ...]:
    """The settings most likely behind a refusal every record of ``stream`` shares."""
    return setting_cause(reason, kind, tenant_id) or (f"mappings.{stream}", f"{kind}_schema_id")


class RejectionGuard:
    """Watches every batch's refusals (thread-safe: batches of several streams finish concurrently)."""

    def __init__(self, *, tenant_id: str, max_records: int, max_percent: int) -> None:
        self.tenant_id = tenant_id
        self.max_records = max_records  # 0: no limit
        self.max_percent = max_percent  # 100: no limit
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamTally] = {}

    def check_batch(
        self, stream: str, kind: str, reasons: list[str], outcomes: int, whole_requests: Sequence[tuple[str, int]]
    ) -> None:
        """Raise ``SystemicRejection`` when a batch's refusals (``reasons``, one per refused record, of ``outcomes``
        records) or a request refused whole for one reason (``whole_requests``: ``(reason, messages)``) show a cause
        no record can cure. Called before the batch's refusals are dead-lettered."""
        for reason in reasons:
            if setting_cause(reason, kind, self.tenant_id) is not None:
                self._stop(stream, kind, reason, "every message of the stream is refused")
        for reason, messages in whole_requests:
            if messages >= FIRST_RECORDS:
                self._stop(stream, kind, reason, f"DCS refused all {messages} messages of a request for it")
        with self._lock:
            tally = self._streams.setdefault(stream, _StreamTally())
            first = tally.outcomes < FIRST_RECORDS
            tally.outcomes += outcomes
            tally.refused += len(reasons)
            if first:
                tally.first_reasons.update(reasons)
                only = [reason for reason, count in tally.first_reasons.items() if count == tally.outcomes]
                judged = tally.outcomes >= FIRST_RECORDS
        if first and judged and only:
            self._stop(stream, kind, only[0], f"the stream's first {FIRST_RECORDS} or more records were all refused")

    def check_totals(self, stream: str, dead_lettered: int) -> None:
        """Raise ``TooManyRejectedRecords`` when the run's or ``stream``'s refusals exceed the limits; called after
        the batch's refusals were dead-lettered (``dead_lettered``: the run's total so far)."""
        if self.max_records and dead_lettered > self.max_records:
            msg = (
                f"{dead_lettered} records dead-lettered, more than max_rejected_records={self.max_records}: aborting "
                "(state is not advanced past this batch)"
            )
            raise TooManyRejectedRecords(msg)
        with self._lock:
            tally = self._streams.get(stream, _StreamTally())
            refused, outcomes = tally.refused, tally.outcomes
        if outcomes >= SHARE_SAMPLE and refused * 100 > self.max_percent * outcomes:
            msg = (
                f"stream {stream!r}: {refused} of {outcomes} records refused, more than max_rejected_percent="
                f"{self.max_percent}: aborting (state is not advanced past this batch); the dead letter says why"
            )
            raise TooManyRejectedRecords(msg)

    def _stop(self, stream: str, kind: str, reason: str, why: str) -> None:
        settings = " / ".join(likely_settings(reason, kind, stream, self.tenant_id))
        msg = (
            f"stream {stream!r}: {why} ({reason[:300]}): no record can cure that, so the run stops without "
            f"dead-lettering the batch or advancing the state -- check {settings}"
        )
        raise SystemicRejection(msg)
