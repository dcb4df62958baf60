"""Publishing to the DCS HTTP API streaming inlet: envelopes, packing by bytes, rate limits, retries, 207 parsing.

Modelled on Adobe's Kafka Connect sink (experience-platform-streaming-connect): always the batch endpoint,
bearer token from the IMS provider, per-message failures of a 207 reported rather than retried. Unlike it,
requests are packed to the byte limit and sent concurrently under client-side rate limits, a 413 splits the
request, and 429/5xx/dropped connections are retried with jittered backoff that honours ``Retry-After``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import requests

from target_adobe_aep.connection import Clock, RetriableError, RetryPolicy, send
from target_adobe_aep.ims import TokenProvider

logger = logging.getLogger(__name__)

_BATCH_OPEN, _BATCH_CLOSE = b'{"messages":[', b"]}"
REQUEST_OVERHEAD = len(_BATCH_OPEN) + len(_BATCH_CLOSE)


class PublishError(RuntimeError):
    """DCS refused a request in a way no retry cures; nothing after the last emitted state is acknowledged."""


def batch_url(inlet_url: str) -> str:
    """The batch endpoint of an inlet URL, as Adobe's Kafka sink derives it."""
    if "/collection/batch/" in inlet_url:
        return inlet_url
    if "/collection/" not in inlet_url:
        msg = f"inlet_url must look like https://dcs.adobedc.net/collection/{{inletId}}, got {inlet_url!r}"
        raise ValueError(msg)
    return inlet_url.replace("/collection/", "/collection/batch/", 1)


def single_url(batch: str) -> str:
    """The single-message endpoint of an inlet, from its batch endpoint."""
    return batch.replace("/collection/batch/", "/collection/", 1)


# DCS's per-message envelope errors (EN help/ingestion/tutorials/streaming-multiple-messages.md): the same for every
# message of a destination, so they come from settings, not from records.
ENVELOPE_ERRORS = {
    "absent or wrong ims org": ("org_id",),
    "unknown xdm format": ("{kind}_dataset_id", "{kind}_schema_id"),
    "'header' field is mandatory": ("{kind}_dataset_id", "{kind}_schema_id"),
}


def envelope_error_settings(message: str, kind: str) -> tuple[str, ...] | None:
    """The settings behind a DCS envelope error in ``message``, for destination ``kind``; None for other errors."""
    lowered = message.lower()
    for marker, settings in ENVELOPE_ERRORS.items():
        if marker in lowered:
            return tuple(setting.format(kind=kind) for setting in settings)
    return None


class RateLimiter:
    """Token bucket allowing ``rate`` units per second.

    It starts empty at the first call, so a run's average rate is the cap from its first request on (no initial
    burst), and saves at most one second's worth while callers are slower, so the time the target spends
    converting between batches is not lost. A caller takes its units at once and, when the bucket runs short,
    sleeps until the debt is paid, so callers are served in order and a request larger than the bucket still
    gets through. Waits go through the run's ``Clock``, so a termination signal ends them.
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = float(rate)
        self._clock = clock
        self._tokens = 0.0
        self._stamp: float | None = None
        self._lock = threading.Lock()

    def acquire(self, units: float = 1.0) -> float:
        """Take ``units``, sleeping as needed; returns the time slept."""
        with self._lock:
            now = self._clock.now()
            elapsed = 0.0 if self._stamp is None else now - self._stamp
            self._tokens = min(self.rate, self._tokens + elapsed * self.rate)
            self._stamp = now
            self._tokens -= units
            delay = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if delay:
            self._clock.sleep(delay)
        return delay


class RequestFill:
    """Greedy packing of messages, in order, into requests of at most ``max_request_bytes``, one message at a time."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self.closed = 0  # requests the next message did not fit into
        self.used = REQUEST_OVERHEAD  # bytes of the open request
        self.count = 0  # messages in the open request

    def add(self, size: int) -> bool:
        """Account for a message of ``size`` bytes (it must fit alone); True when it opens a new request."""
        extra = size + (1 if self.count else 0)  # the comma between messages
        if self.count and self.used + extra > self.max_request_bytes:
            self.closed += 1
            self.used, self.count = REQUEST_OVERHEAD + size, 1
            return True
        self.used += extra
        self.count += 1
        return self.count == 1

    @property
    def full_requests(self) -> int:
        """The closed requests, plus the open one once another message of its average size would not fit."""
        open_full = self.count and self.used + self.used // self.count > self.max_request_bytes
        return self.closed + bool(open_full)


def pack(sizes: list[int], max_request_bytes: int) -> tuple[list[list[int]], list[int]]:
    """Indices grouped in order into requests of at most ``max_request_bytes``, and the indices too big alone."""
    groups: list[list[int]] = []
    oversized: list[int] = []
    fill = RequestFill(max_request_bytes)
    for index, size in enumerate(sizes):
        if REQUEST_OVERHEAD + size > max_request_bytes:
            oversized.append(index)
        else:
            if fill.add(size):
                groups.append([])
            groups[-1].append(index)
    return groups, oversized


def parse_multi_status(body: object, count: int) -> list[tuple[bool, int | None, str]]:
    """Per message: ``(accepted, status, xactionId or error message)``.

    DCS documents failures as ``{"statusCode", "message"}`` and successes as ``{"xactionId"}``, one entry per
    message in order (EN streaming-multiple-messages.md); Adobe's Kafka sink also treats ``status`` as a failure
    marker (its test fixture ``aep-connector-inlet-multi-message-response.json``). A missing or unreadable entry
    counts as a rejection, so the message lands in the dead letter rather than nowhere.
    """
    responses = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(responses, list):
        responses = []
    results: list[tuple[bool, int | None, str]] = []
    for index in range(count):
        entry = responses[index] if index < len(responses) else None
        if not isinstance(entry, dict):
            results.append((False, None, "DCS returned no response entry for this message"))
            continue
        status = entry.get("statusCode", entry.get("status"))
        try:
            status = int(status) if status is not None else None
        except (TypeError, ValueError):
            results.append((False, None, f"DCS returned an unreadable status {str(status)[:40]!r}"))
            continue
        if status is not None and not 200 <= status < 300:
            results.append((False, status, str(entry.get("message") or "rejected without a message")))
        elif entry.get("xactionId"):
            results.append((True, status, str(entry["xactionId"])))
        else:
            results.append((False, status, "DCS response entry has neither an xactionId nor an error"))
    return results


@dataclass
class Rejection:
    index: int
    http_status: int | None
    reason: str


@dataclass
class PublishResult:
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    #: Each request whose messages (two or more) were all refused for one reason: ``(reason, messages)``.
    whole_requests_refused: list[tuple[str, int]] = field(default_factory=list)

    def add(self, other: PublishResult) -> None:
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        self.requests += other.requests
        self.retries += other.retries
        self.whole_requests_refused.extend(other.whole_requests_refused)


class Publisher:
    """Sends messages to one inlet's batch endpoint; shared by all sinks so the limits are global."""

    def __init__(
        self,
        *,
        session: requests.Session,
        inlet_url: str,
        tokens: TokenProvider | None,
        max_request_bytes: int,
        max_messages_per_second: float,
        max_requests_per_second: float,
        max_concurrency: int,
        retry: RetryPolicy,
    ) -> None:
        self._session = session
        self._url = batch_url(inlet_url)
        self._tokens = tokens
        self._headers = {"Content-Type": "application/json"}
        self.max_request_bytes = max_request_bytes
        self._messages = RateLimiter(max_messages_per_second, retry.clock)
        self._requests = RateLimiter(max_requests_per_second, retry.clock)
        self._retry = retry
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="dcs")

    def close(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def publish(self, messages: list[bytes], flow_id: str | None = None) -> PublishResult:
        """Send ``messages`` (of the dataflow ``flow_id``, sent as ``x-adobe-flow-id``) and wait until each is
        accepted or rejected; raise ``PublishError`` otherwise."""
        groups, oversized = pack([len(m) for m in messages], self.max_request_bytes)
        result = PublishResult()
        for index in oversized:
            reason = f"message of {len(messages[index])} bytes does not fit in a request (max_request_bytes)"
            result.rejected.append(Rejection(index, None, reason))
        futures = [self._executor.submit(self._send, messages, group, flow_id) for group in groups]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for future in pending:
                future.cancel()
            wait(pending)
            raise failed[0].exception()  # type: ignore[misc]
        for future in futures:
            result.add(future.result())
        return result

    def _send(self, messages: list[bytes], indices: list[int], flow_id: str | None) -> PublishResult:
        result = PublishResult()
        body = _BATCH_OPEN + b",".join(messages[i] for i in indices) + _BATCH_CLOSE

        def count_retry(_error: RetriableError) -> None:
            result.retries += 1

        def attempt(timeout: float) -> requests.Response:
            self._requests.acquire()
            self._messages.acquire(len(indices))
            result.requests += 1
            return self._post(body, timeout, flow_id=flow_id)

        response = self._retry.call(attempt, on_retry=count_retry)
        if response.status_code == 413:
            if len(indices) == 1:
                result.rejected.append(Rejection(indices[0], 413, f"DCS: payload too large: {_excerpt(response)}"))
                return result
            logger.info("DCS answered 413 for %d messages (%d bytes); splitting", len(indices), len(body))
            half = len(indices) // 2
            for part in (indices[:half], indices[half:]):
                result.add(self._send(messages, part, flow_id))
            return result
        if response.status_code not in (200, 207):
            msg = f"DCS answered HTTP {response.status_code}: {_excerpt(response)}"
            raise PublishError(msg)
        try:
            payload = response.json()
        except ValueError:
            msg = f"DCS answered {response.status_code} with a body that is not JSON: {_excerpt(response)}"
            raise PublishError(msg) from None
        for index, (accepted, status, detail) in zip(indices, parse_multi_status(payload, len(indices)), strict=False):
            if accepted:
                result.accepted += 1
            else:
                result.rejected.append(Rejection(index, status, f"DCS: {detail}"))
        reasons = {rejection.reason for rejection in result.rejected}
        if len(indices) > 1 and not result.accepted and len(reasons) == 1:
            result.whole_requests_refused.append((reasons.pop(), len(indices)))
        return result

    def validate_one(self, message: bytes, flow_id: str | None = None) -> requests.Response:
        """DCS's answer to ``message`` (of the dataflow ``flow_id``) sent alone with ``syncValidation=true``
        (streaming-validation.md): a message failing validation is refused (400) and dropped. Retried like every
        request; raises ``PublishError`` when the inlet wants a token the settings do not give."""
        url, params = single_url(self._url), {"syncValidation": "true"}
        return self._retry.call(lambda timeout: self._post(message, timeout, url, params, flow_id))

    def _post(
        self, body: bytes, timeout: float, url: str | None = None, params: dict[str, str] | None = None,
        flow_id: str | None = None,
    ) -> requests.Response:  # fmt: skip
        # The dataflow's id goes in each message's header.flowId and, as the HTTP API tutorial shows for raw data,
        # in x-adobe-flow-id (EN help/sources/tutorials/api/create/streaming/http.md).
        base = {**self._headers, "x-adobe-flow-id": flow_id} if flow_id else self._headers

        def post(token: str | None) -> requests.Response:
            headers = base if token is None else {**base, "Authorization": f"Bearer {token}"}
            return send(
                self._session, "POST", url or self._url, "DCS", data=body, headers=headers, params=params,
                timeout=timeout,
            )  # fmt: skip

        if self._tokens is None:
            response = post(None)
            if response.status_code in (401, 403):
                msg = f"the inlet requires authentication (HTTP {response.status_code}): set inlet_auth_required"
                raise PublishError(msg)
            return response
        return self._tokens.authorized(post, "DCS inlet")


def _excerpt(response: requests.Response) -> str:
    return response.text[:300]
