"""Base stream for Capillary endpoints: URL, auth, client-side rate limit, retries and error reporting."""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections import Counter
from collections.abc import Generator, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import msgspec
import requests
from singer_sdk import metrics
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import OffsetPaginator
from singer_sdk.streams import RESTStream

from tap_capillary.auth import TOKEN_HEADER, OAuthTokenAuthenticator
from tap_capillary.convert import listed

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_capillary.tap import TapCapillary

# 461: search engine busy; 521: concurrent actions on the same customer (capillary-api.md 2.4).
RETRY_STATUSES = (HTTPStatus.TOO_MANY_REQUESTS, 461, 521)
CONNECTION_ERRORS = (
    ConnectionResetError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class TokenRejectedError(FatalAPIError):
    """HTTP 401: the OAuth token was refused (expired or revoked early)."""

    def __init__(self, message: str, token: str | None) -> None:
        super().__init__(message)
        self.token = token


def endpoint(request: requests.PreparedRequest) -> str:
    """``METHOD /path`` of a request, for messages (never the query string or headers)."""
    return f"{request.method} {urlparse(request.url).path}"


def decoded(response: requests.Response) -> Any:
    """The JSON body, decoded once per response: validation, paginators and parsing all read it.

    Raises ``ValueError`` for a body that is not JSON.
    """
    body = getattr(response, "capillary_body", _UNDECODED)
    if body is _UNDECODED:
        body = response.capillary_body = msgspec.json.decode(response.content)  # type: ignore[attr-defined]
    return body


_UNDECODED = object()


def json_object(response: requests.Response) -> dict[str, Any]:
    """The body as a JSON object, or ``{}`` (error bodies may be anything)."""
    try:
        body = decoded(response)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _statuses(response: requests.Response) -> list[dict]:
    """Capillary's status blocks in a body: v1.1 ``response.status``, v2 ``errors[]``, rewards ``status``."""
    body = json_object(response)
    envelope = body.get("response")
    statuses = [envelope.get("status")] if isinstance(envelope, dict) else []
    statuses += body.get("errors") or []
    statuses.append(body.get("status"))
    return [s for s in statuses if isinstance(s, dict)]


def capillary_codes(response: requests.Response) -> set[str]:
    return {str(s["code"]) for s in _statuses(response) if s.get("code") is not None}


def capillary_error(response: requests.Response) -> str:
    """Capillary's own codes and messages from an error body, else the HTTP reason."""
    described = [f"code {s.get('code')}: {s['message']}" for s in _statuses(response) if s.get("message")]
    return "; ".join(described) or response.reason or "no details"


class ItemErrors:
    """Thread-safe tally of item-level errors reported inside HTTP 200 responses, by stream and code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, stream: str, code: Any) -> None:
        with self._lock:
            self.counts[(stream, str(code))] += 1

    def for_stream(self, stream: str) -> dict[str, int]:
        with self._lock:
            return {code: n for (name, code), n in self.counts.items() if name == stream}


class DebugCounter(metrics.Counter):
    """A metrics counter that is logged only when the metrics logger is at DEBUG."""

    def exit(self) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            super().exit()


class CapillaryStream(RESTStream):
    """Shared request behaviour; the authenticator and the rate limiter belong to the tap (shared by threads)."""

    _tap: TapCapillary
    extra_retry_statuses = RETRY_STATUSES
    #: Retries: exponential from ``retry_base_seconds`` (with jitter) unless the API sends ``Retry-After``.
    retry_base_seconds = 1.0
    retry_max_seconds = 120.0
    max_tries = 6

    #: Records are built with the schema's JSON types (``convert.py``); the SDK's per-record type
    #: conformance pass would only repeat that (the SDK's record-vs-schema tests guard it).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests_session = self._tap.http_session  # one keep-alive pool for all streams and workers

    @property
    def _LOG_REQUEST_METRICS(self) -> bool:
        """The SDK's switch for per-request ``http_request_duration`` metrics: on only at DEBUG. At hundreds
        of requests per second they are noise that costs CPU, logging-lock waits and Meltano's re-logging."""
        return self.metrics_logger.isEnabledFor(logging.DEBUG)

    def get_http_request_counter(self) -> metrics.Counter:
        """The SDK logs one ``http_request_count`` per request listing (per customer here): DEBUG only too."""
        return DebugCounter(
            metrics.Metric.HTTP_REQUEST_COUNT, {metrics.Tag.STREAM: self.name, metrics.Tag.ENDPOINT: self.path}
        )

    @property
    def url_base(self) -> str:
        return self.config["base_url"].rstrip("/")

    @property
    def authenticator(self) -> Any:
        return self._tap.authenticator

    @property
    def http_headers(self) -> dict:
        return {"Accept": "application/json", "Content-Type": "application/json"}

    def page_limit(self, endpoint_max: int) -> int:
        """The endpoint's largest page size, or the ``page_size`` setting if smaller."""
        return min(endpoint_max, self.config.get("page_size") or endpoint_max)

    # -- requests ---------------------------------------------------------------------------------------

    def _request(self, prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
        try:
            return self._send(prepared_request, context)
        except TokenRejectedError as exc:
            if not isinstance(self.authenticator, OAuthTokenAuthenticator):
                raise
            # A token can be revoked before its TTL: renew once, then give up.
            self.logger.warning("OAuth token refused by %s; generating a new one", endpoint(prepared_request))
            self.authenticator.reject(exc.token)
            try:
                return self._send(prepared_request, context)
            except TokenRejectedError as again:
                msg = f"{again} (also after generating a new OAuth token)"
                raise FatalAPIError(msg) from None

    def _send(self, prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
        """One try: within the shared rate limit and the run's ``max_workers`` requests in flight."""
        self._tap.rate_limiter.try_acquire("capillary")
        with self._tap.request_slots:
            return super()._request(prepared_request, context)

    def request_decorator(self, func: Any) -> Any:
        retrying = super().request_decorator(func)

        @functools.wraps(func)
        def call(prepared_request: requests.PreparedRequest, context: Context | None) -> requests.Response:
            try:
                return retrying(prepared_request, context)
            except RetriableAPIError as exc:
                msg = f"Giving up after {self.max_tries} tries: {exc}"
                raise FatalAPIError(msg) from None
            except CONNECTION_ERRORS as exc:
                msg = f"Giving up after {self.max_tries} tries: {type(exc).__name__} on {endpoint(prepared_request)}"
                raise FatalAPIError(msg) from None

        return call

    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            raise TokenRejectedError(self.response_error_message(response), response.request.headers.get(TOKEN_HEADER))
        if status in self.extra_retry_statuses or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(self.response_error_message(response), response)
        if status >= HTTPStatus.BAD_REQUEST:
            raise FatalAPIError(self.response_error_message(response))

    def response_error_message(self, response: requests.Response) -> str:
        # Path only: query strings can carry customer identifiers; headers carry credentials.
        return f"HTTP {response.status_code} from {endpoint(response.request)} ({capillary_error(response)})"

    # -- backoff ----------------------------------------------------------------------------------------

    def backoff_max_tries(self) -> int:
        return self.max_tries

    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Waits ``Retry-After`` when the API sends it, else exponential backoff with jitter."""
        exception = yield  # type: ignore[misc]
        attempt = 0
        while True:
            retry_after = _retry_after(exception)
            if retry_after is None:
                ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2**attempt)
                wait = random.uniform(ceiling / 2, ceiling)
            else:
                wait = min(self.retry_max_seconds, retry_after)
            attempt += 1
            exception = yield wait

    def backoff_jitter(self, value: float) -> float:
        return value  # jitter is applied by backoff_wait_generator, never on top of Retry-After

    def backoff_handler(self, details: Any) -> None:
        exc = details.get("exception")
        reason = type(exc).__name__
        if isinstance(exc, RetriableAPIError) and exc.response is not None:
            reason = f"HTTP {exc.response.status_code}"
        request = details["args"][0] if details.get("args") else None
        where = endpoint(request) if isinstance(request, requests.PreparedRequest) else self.name
        self.logger.warning(
            "Retrying %s after %s in %.2f s (try %d of %d)",
            where,
            reason,
            details.get("wait", 0.0),
            details.get("tries", 0),
            self.max_tries,
        )

    # -- item-level errors ------------------------------------------------------------------------------

    def item_error(self, code: Any, message: Any, subject: str) -> None:
        """An error about one item inside a successful response: log it, count it, carry on."""
        self._tap.item_errors.add(self.name, code)
        self.logger.warning(
            "Capillary item error %s (%s) for %s in stream %s; skipped", code, message, subject, self.name
        )

    def log_item_errors(self) -> None:
        counts = self._tap.item_errors.for_stream(self.name)
        if counts:
            self.logger.warning("Stream %s skipped items with Capillary error codes: %s", self.name, counts)


def _retry_after(exception: Any) -> float | None:
    response = getattr(exception, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # HTTP-date form: fall back to exponential backoff


def parse_json(response: requests.Response) -> Any:
    try:
        return decoded(response)
    except ValueError:
        msg = f"Non-JSON body from {endpoint(response.request)} (HTTP {response.status_code})"
        raise FatalAPIError(msg) from None


class TotalOffsetPaginator(OffsetPaginator):
    """v2 offsets, until the body's ``pagination.total``."""

    def has_more(self, response: requests.Response) -> bool:
        total = (parse_json(response).get("pagination") or {}).get("total")
        return total is not None and self.current_value + self.page_size < int(total)


class V11CustomersStream(CapillaryStream):
    """v1.1 calls taking several customers and answering an ``item_status`` per customer."""

    def validate_response(self, response: requests.Response) -> None:
        # When every customer of a call fails, v1.1 answers HTTP 500 "All requests have failed":
        # those are item-level errors (merged, deleted customers), not a server fault to retry.
        if response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR and self._customer_items(response):
            return
        super().validate_response(response)

    @staticmethod
    def _customer_items(response: requests.Response) -> list[dict]:
        customers = (json_object(response).get("response") or {}).get("customers") or {}
        return [c for c in listed(customers, "customer") if isinstance(c, dict) and "item_status" in c]

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """The customers found; the others are item-level errors."""
        for customer in self._customer_items(response):
            status = customer["item_status"]
            if str(status.get("success")).lower() != "true":
                subject = ", ".join(f"{k} {v}" for k, v in customer.items() if k != "item_status")
                self.item_error(status.get("code"), status.get("message"), subject or "a customer")
                continue
            yield customer
