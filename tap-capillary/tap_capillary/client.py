"""Base stream for Capillary endpoints: URL, auth, client-side rate limit, retries, and what the API reports
(errors, item errors and warnings, classified in ``errors.py``)."""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
import requests
from singer_sdk import metrics
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams import RESTStream

from tap_capillary.auth import TOKEN_HEADER, OAuthTokenAuthenticator
from tap_capillary.convert import listed
from tap_capillary.errors import CODES, ITEM_ERROR, Action, Report, Verdict, classify, item_reports, read_reports
from tap_capillary.transport import TRY_TIMEOUT_SECONDS, RateLimitedError, endpoint

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_capillary.tap import TapCapillary


class TokenRejectedError(FatalAPIError):
    """The API refused the OAuth token (invalid or expired: 401, 498, in the body or as the HTTP status)."""

    def __init__(self, message: str, token: str | bytes | None) -> None:
        super().__init__(message)
        self.token = token


class ItemUnavailableError(FatalAPIError):
    """The API cannot return the customer or bill asked for (deleted, merged): the caller counts and skips it.

    Fatal where nobody catches it: an org-level listing has no item to skip."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


_UNDECODED = object()


def api_name(path: str) -> str:
    """The name Capillary's docs give an endpoint: its path template without the leading slash, every parameter
    written ``{id}`` (the rate-limit table's ``v2/customers/{id}``). Per-API budgets are keyed by it."""
    return re.sub(r"\{[^}]*\}", "{id}", path.lstrip("/"))


def decoded(response: requests.Response) -> Any:
    """The JSON body, decoded once per response (validation, paginators and parsing all read it); None when
    the body is not JSON (the docs print some error envelopes that are not)."""
    body = getattr(response, "capillary_body", _UNDECODED)
    if body is _UNDECODED:
        try:
            body = msgspec.json.decode(response.content) if response.content else None
        except msgspec.DecodeError:
            body = None
        response.capillary_body = body  # type: ignore[attr-defined]
    return body


def parse_json(response: requests.Response) -> dict[str, Any]:
    """The body of an accepted response, which must be a JSON object."""
    body = decoded(response)
    if not isinstance(body, dict):
        kind = "Non-JSON" if body is None else f"Unexpected JSON ({type(body).__name__})"
        msg = f"{kind} body from {endpoint(response.request)} (HTTP {response.status_code})"
        raise FatalAPIError(msg)
    return body


class CodeTally:
    """Thread-safe counts of Capillary codes by stream: the item errors of a run, or its warnings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, stream: str, code: Any) -> bool:
        """Count one; True the first time this stream sees this code."""
        with self._lock:
            self.counts[(stream, str(code))] += 1
            return self.counts[(stream, str(code))] == 1

    def for_stream(self, stream: str) -> dict[str, int]:
        with self._lock:
            return {code: n for (name, code), n in self.counts.items() if name == stream}

    def streams(self) -> set[str]:
        with self._lock:
            return {name for name, _ in self.counts}


#: A stream whose first customers, this many, all fail with one item-error code stops the run: a wrong setting
#: (cluster, org, endpoint) is likelier than that many customers gone or merged.
SYSTEMIC_ITEM_ERRORS = 20


class CustomerOutcomes:
    """Per stream, whether every customer read so far failed with one Capillary code (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streaks: dict[str, tuple[str, int]] = {}  # stream -> (code, customers), while all failed with it
        self._settled: set[str] = set()  # streams that read a customer, or failed with two codes

    def observe(self, stream: str, code: Any | None) -> int:
        """One customer's outcome (``code`` None: read); how many customers of the stream have all failed with
        ``code`` so far (0 once the stream is settled)."""
        with self._lock:
            if stream in self._settled:
                return 0
            first, failed = self._streaks.get(stream, (str(code), 0))
            if code is None or str(code) != first:
                self._streaks.pop(stream, None)
                self._settled.add(stream)
                return 0
            self._streaks[stream] = (first, failed + 1)
            return failed + 1

    def all_failed(self, stream: str) -> bool:
        """Whether the stream's customers so far all failed (with one code)."""
        with self._lock:
            return stream in self._streaks


class PerRequestMetricsAtDebug(metrics.MetricExclusionFilter):
    """Drops the SDK's per-request metrics (``http_request_duration``, and ``http_request_count`` per listing)
    unless the metrics logger is at DEBUG: at hundreds of requests per second they are noise that costs CPU,
    logging-lock waits and Meltano's re-logging. A logger filter runs before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return metrics.get_metrics_logger().isEnabledFor(logging.DEBUG) or super().filter(record)


PER_REQUEST_METRICS = PerRequestMetricsAtDebug(
    metrics=[metrics.Metric.HTTP_REQUEST_DURATION, metrics.Metric.HTTP_REQUEST_COUNT]
)


class CapillaryStream(RESTStream):
    """Shared request behaviour; what a run's streams and worker threads share (the transport, the authenticator)
    belongs to the tap.

    Every response goes through one classification (``errors.py``), whatever its HTTP status."""

    #: The access group resource the endpoint belongs to (InTouch > Organization settings > Access control),
    #: named when the API denies access.
    access_group = "Customer"
    #: Never follow a redirect (the session refuses them too: ``transport.py``).
    allow_redirects = False

    #: Records are built with the schema's JSON types (``convert.py``); the SDK's per-record type
    #: conformance pass would only repeat that (the SDK's record-vs-schema tests guard it).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapCapillary, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        self.capillary_tap = tap
        self._try_timeout = threading.local()  # per thread: the timeout of its current try (``timeout``)

    @functools.cached_property
    def api(self) -> str:
        """The API this stream reads (``api_name``): its pacing and budget; its path is fixed."""
        return api_name(self.path)

    @property
    def requests_session(self) -> requests.Session:
        return self.capillary_tap.transport.session  # one keep-alive pool for all streams and workers

    @property
    def timeout(self) -> int:
        """The timeout of this thread's current try: what is left of its call's retry budget, at most a minute."""
        return math.ceil(getattr(self._try_timeout, "seconds", TRY_TIMEOUT_SECONDS))

    @property
    def url_base(self) -> str:
        return self.config["base_url"].rstrip("/")

    @property
    def authenticator(self) -> Any:
        return self.capillary_tap.authenticator

    @property
    def http_headers(self) -> dict:
        return {"Accept": "application/json", "Content-Type": "application/json"}

    def page_limit(self, endpoint_max: int) -> int:
        """The endpoint's largest page size, or the ``page_size`` setting if smaller."""
        return min(endpoint_max, self.config.get("page_size") or endpoint_max)

    # -- requests ---------------------------------------------------------------------------------------

    def request_decorator(self, func: Any) -> Any:
        """Every request of the tap: tried under the run's retry policy; each try paced by the transport; a
        refused OAuth token renewed once. ``func`` is the SDK's one try: authenticate, send, ``validate_response``."""
        transport = self.capillary_tap.transport

        def paced_try(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            with transport.paced(self.api):
                return func(prepared_request, context)

        def one_try(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                return paced_try(prepared_request, context)
            except TokenRejectedError as exc:
                if not isinstance(self.authenticator, OAuthTokenAuthenticator):
                    raise
                # Tokens expire (498) or are revoked before their TTL (401): renew once, then give up.
                self.logger.warning("OAuth token refused by %s; generating a new one", endpoint(prepared_request))
                self.authenticator.reject(exc.token)
                try:
                    return paced_try(prepared_request, context)
                except TokenRejectedError as again:
                    msg = f"{again} (also after generating a new OAuth token)"
                    raise FatalAPIError(msg) from None

        @functools.wraps(func)
        def call(prepared_request: requests.PreparedRequest, context: Context | None = None) -> requests.Response:
            def attempt(timeout: float) -> requests.Response:
                self._try_timeout.seconds = timeout
                return one_try(prepared_request, context)

            return transport.retry.call(attempt, endpoint(prepared_request))

        return call

    # -- what the API reports -----------------------------------------------------------------------------

    def item_statuses(self, body: Any) -> list[Any]:
        """The per-item ``item_status`` blocks of a body, for endpoints whose items carry their own codes."""
        return []

    def verdict(self, response: requests.Response) -> Verdict:
        """The classification of a response (``errors.py``), once per response."""
        cached = getattr(response, "capillary_verdict", None)
        if cached is None:
            body = decoded(response)
            reports = read_reports(body, response.content)
            items = self.item_statuses(body)
            if items:
                item_errors = tuple(r for status in items for r in item_reports(status).errors)
                cached = classify(response.status_code, reports.errors + item_errors, items_decide=True)
                if cached.action <= ITEM_ERROR:  # each item's own error is counted as its item is parsed
                    cached = Verdict(Action.OK)
            else:
                cached = classify(response.status_code, reports.errors)
            response.capillary_verdict = cached  # type: ignore[attr-defined]
            response.capillary_warnings = reports.warnings  # type: ignore[attr-defined]
        return cached

    def validate_response(self, response: requests.Response) -> None:
        verdict = self.verdict(response)
        action = verdict.action
        if action <= Action.NO_DATA:
            for warning in response.capillary_warnings:  # type: ignore[attr-defined]
                self.warning(warning, endpoint(response.request))
            return
        message = self.response_error_message(response)
        if action == Action.RENEW_TOKEN:
            raise TokenRejectedError(message, response.request.headers.get(TOKEN_HEADER))
        if action == Action.RETRY:
            too_many = HTTPStatus.TOO_MANY_REQUESTS in (verdict.code, response.status_code)
            raise (RateLimitedError if too_many else RetriableAPIError)(message, response)
        if action == Action.ITEM_ERROR:
            raise ItemUnavailableError(message, verdict.code)
        if action == Action.NO_ACCESS:
            msg = (
                f"No access: {message}. Give the API client's access group Read access to the "
                f"{self.access_group} resource (InTouch > Organization settings > Access control)."
            )
            raise FatalAPIError(msg)
        raise FatalAPIError(message)

    def response_error_message(self, response: requests.Response) -> str:
        # Path only: query strings can carry customer identifiers; headers carry credentials.
        verdict = self.verdict(response)
        detail = verdict.describe() or response.reason or "no details"
        return f"HTTP {response.status_code} from {endpoint(response.request)} ({detail})"

    def records_at(self, response: requests.Response, *path: str) -> Any:
        """The value at ``path`` of an accepted body; None on an empty page (``NO_DATA``). A body without the
        path is not a response of this endpoint: the run stops rather than read it as empty."""
        if self.verdict(response).action == Action.NO_DATA:
            return None
        value: Any = parse_json(response)
        for depth, key in enumerate(path):
            if not isinstance(value, dict) or key not in value:
                where = ".".join(path[: depth + 1])
                msg = f"Unexpected response from {endpoint(response.request)} (HTTP {response.status_code}): no {where}"
                raise FatalAPIError(msg)
            value = value[key]
        return value

    # -- item errors and warnings -----------------------------------------------------------------------

    def item_error(self, code: Any, message: Any, subject: str) -> None:
        """A customer or bill the API cannot return, or a record that cannot be placed: log it, count it, carry on."""
        self.capillary_tap.item_errors.add(self.name, code)
        self.logger.warning(
            "Capillary item error %s (%s) for %s in stream %s; skipped", code, message, subject, self.name
        )

    def warning(self, report: Report, subject: str) -> None:
        """A warning in an accepted response (the data is read): counted; logged the first time per code."""
        if self.capillary_tap.warnings.add(self.name, report.code):
            self.logger.warning(
                "Capillary warning %s from %s in stream %s (data read; further ones are counted)",
                report,
                subject,
                self.name,
            )

    def skipped_item(self, item_status: Any, subject: str, response: requests.Response) -> Any | None:
        """An item's error code if its ``item_status`` makes it an item error (counted and logged), else None: the
        item is read (its warnings counted). Fatal item codes were raised by ``validate_response``."""
        reports = item_reports(item_status)
        verdict = classify(HTTPStatus.OK, reports.errors)
        if verdict.action == ITEM_ERROR:
            self.item_error(verdict.code, verdict.describe(), subject)
            return verdict.code
        for warning in reports.warnings:
            self.warning(warning, endpoint(response.request))
        return None

    def customer_outcome(self, code: Any | None) -> None:
        """One customer read (``code`` None) or skipped as an item error: the run stops when the stream's first
        ``SYSTEMIC_ITEM_ERRORS`` customers all failed with one code."""
        failed = self.capillary_tap.customer_outcomes.observe(self.name, code)
        if failed < SYSTEMIC_ITEM_ERRORS:
            return
        meaning = CODES.get(code, (None, ""))[1] if isinstance(code, int) else ""
        msg = (
            f"Stream {self.name}: its first {failed} customers all failed with Capillary code {code}"
            f"{f' ({meaning})' if meaning else ''}; stopping without writing STATE for them. So many customers "
            "failing alike points at a setting: check that base_url is the org's cluster, that the credentials "
            "belong to the org, and that the endpoint is enabled for it."
        )
        raise FatalAPIError(msg)

    def log_item_errors(self) -> None:
        self.capillary_tap.log_tallies(self.name)

    def log_sync_costs(self) -> None:
        """The SDK's last call of each catalog stream at the end of a run; the last one also sums up the helper
        streams (customer search and lookup, store lookup)."""
        super().log_sync_costs()
        if list(self.capillary_tap.streams.values())[-1] is self:
            self.capillary_tap.log_helper_tallies()


#: How v1.1 names a customer in its items (a failed item echoes the identifier asked for).
IDENTIFIERS = ("user_id", "id", "mobile", "email", "external_id")


class V11CustomersStream(CapillaryStream):
    """v1.1 calls taking several customers and answering an ``item_status`` per customer."""

    def item_statuses(self, body: Any) -> list[Any]:
        return [c.get("item_status") for c in self._customer_items(body) if "item_status" in c]

    @staticmethod
    def _customer_items(body: Any) -> list[dict]:
        envelope = body.get("response") if isinstance(body, dict) else None
        customers = envelope.get("customers") if isinstance(envelope, dict) else None
        return [c for c in listed(customers, "customer") if isinstance(c, dict)]

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """The customers returned; the others are item errors (fatal codes were raised by ``validate_response``)."""
        self.records_at(response, "response", "customers")
        for customer in self._customer_items(parse_json(response)):
            asked = ", ".join(f"{k} {customer[k]}" for k in IDENTIFIERS if customer.get(k) not in (None, ""))
            code = self.skipped_item(customer.get("item_status"), asked or "a customer", response)
            self.customer_outcome(code)
            if code is None:
                yield customer

    @staticmethod
    def customer_id(customer: dict, asked_ids: list[int] | None = None) -> int | None:
        """``user_id`` (returned with ``user_id=true``), else ``id``, else the one customer asked for by id."""
        value = customer.get("user_id") or customer.get("id")
        if value not in (None, ""):
            return int(value)
        return asked_ids[0] if asked_ids and len(asked_ids) == 1 else None
