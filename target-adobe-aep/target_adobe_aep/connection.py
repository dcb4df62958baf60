"""What every call to Adobe shares: the outbound-HTTP policy (URLs, session, TLS, redirects), retries, and waits.

Every client (IMS token, Schema Registry, Catalog, DCS, the preflight probes) sends through ``send`` with the
target's one session from ``new_session``, and retries through ``RetryPolicy.call``, so the policy holds for all:

- https only, except http to a loopback host (local emulators): ``checked_url``;
- TLS certificates always verified, against the system CAs or the ``ca_bundle`` setting (there is no way to turn
  verification off); a certificate that does not verify is an error, not a retry;
- redirects never followed: the IMS request carries the client secret and DCS requests carry personal data, so a
  3xx answer is an error naming the endpoint, whatever its target;
- one retry layer per call: a call's tries happen in ``RetryPolicy.call``, and a call that gave up
  (``RetriesExhausted``) is not retried by the call that needed it (a DCS request needing a token);
- every wait (retry backoff, rate limits) goes through the run's ``Clock``, which a termination signal stops.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

T = TypeVar("T")
logger = logging.getLogger(__name__)

USER_AGENT = "target-adobe-aep"

# Statuses Adobe documents as transient: 429 (rate limit) and 5xx ("retry at least 3 times using an exponential
# back-off strategy", Data Ingestion OpenAPI, 503).
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Errors after which the request may not have been processed; all our calls are safe to repeat.
CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
#: Longest wait between tries when the API sends no ``Retry-After`` (exponential backoff reaches it).
MAX_BACKOFF_SECONDS = 60.0


def backoff_seconds(tries: int, base_seconds: float, retry_after: float | None) -> float:
    """The wait after try ``tries``: exponential backoff from ``base_seconds`` with equal jitter (at least half of
    the step, so retries of many threads spread out yet still back off), never shorter than ``Retry-After``."""
    ceiling = min(MAX_BACKOFF_SECONDS, base_seconds * 2 ** (tries - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


class ConfigError(ValueError):
    """A setting is missing or unusable; raised before anything is sent."""


class RetriableError(Exception):
    """A transient failure of one try: 429, 5xx (``status``) or a dropped connection (``status`` None).
    ``retry_after`` is the server's hint."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status


class RetriesExhausted(RuntimeError):
    """A call still failed after its retries or its time budget; the run stops. Not a ``RetriableError``, so the
    call that needed this one (a DCS request needing a token) does not retry it again."""


class Interrupted(RuntimeError):
    """The run is stopping (a termination signal): a wait ended early and the call was abandoned."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(url: str, setting: str) -> str:
    """``url`` if it is https, or http to a loopback host (local emulators); TLS is never optional elsewhere."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url.rstrip("/")
    msg = f"setting {setting!r} must be an https:// URL (http:// is accepted for loopback hosts only), got {url!r}"
    raise ConfigError(msg)


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _refuse_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: runs before requests would follow a redirect, so none is ever followed."""
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location")
        response.close()
        target = f" to {_without_query(location)}" if location else ""
        msg = (
            f"{_without_query(response.request.url or '')} answered HTTP {response.status_code} redirecting{target}: "
            "redirects are never followed (requests carry credentials or personal data); set the final URL"
        )
        raise ConfigError(msg)


def new_session(pool_size: int, ca_bundle: str | None = None) -> requests.Session:
    """The session every client shares: certificates verified (against ``ca_bundle`` when given), redirects
    refused, a connection pool sized for ``pool_size`` threads."""
    session = requests.Session()
    session.verify = ca_bundle or True
    session.hooks["response"].append(_refuse_redirects)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3), read by urllib3."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return Retry().parse_retry_after(value)
    except InvalidHeader:
        return None


def _tls_failure(error: requests.exceptions.SSLError) -> str | None:
    """The reason of a certificate that did not verify, or None for other TLS errors (a cut handshake)."""
    found = re.search(r"certificate verify failed: [^(']*", str(error))
    return found.group(0).strip() if found else None


def send(session: requests.Session, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
    """One try of a request under the policy: ``RetriableError`` for 429, 5xx and dropped connections,
    ``ConfigError`` for a certificate that does not verify or a redirect."""
    try:
        # ``verify`` given per request: otherwise REQUESTS_CA_BUNDLE overrides the session's (psf/requests#3829).
        response = session.request(method, url, verify=session.verify, **kwargs)
    except requests.exceptions.SSLError as exc:
        reason = _tls_failure(exc)
        if reason is None:
            raise RetriableError(f"{what} request failed: {type(exc).__name__}") from None
        host = urlsplit(url).netloc
        msg = f"{what}: the TLS certificate of {host} does not verify ({reason}); ca_bundle names other CAs to trust"
        raise ConfigError(msg) from None
    except CONNECTION_ERRORS as exc:
        raise RetriableError(f"{what} request failed: {type(exc).__name__}") from None
    if response.status_code in RETRIABLE_STATUSES:
        status = response.status_code
        raise RetriableError(f"{what} answered HTTP {status}", retry_after_seconds(response), status)
    return response


class Clock:
    """Monotonic time, the time of day, and waits that end at once when the run stops: ``stop()`` (from the
    termination signal handler) makes every current and later ``sleep`` raise ``Interrupted``. Tests inject a fake."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now(self) -> float:
        return time.monotonic()

    def utc_now(self) -> datetime.datetime:
        """The time of day in UTC (what ExperienceEvent timestamps are compared with)."""
        return datetime.datetime.now(datetime.UTC)

    def sleep(self, seconds: float) -> None:
        if self._stopped.wait(seconds):
            raise Interrupted("stopping: a termination signal was received")

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff (``backoff_seconds``) that never waits less than ``Retry-After``:
    at most ``max_tries`` tries, and none that would start after ``budget_seconds`` since the first one."""

    max_tries: int = 6
    base_seconds: float = 0.5
    budget_seconds: float = 300.0
    timeout_seconds: float = 60.0
    clock: Clock = field(default_factory=Clock)

    def call(self, attempt: Callable[[float], T], on_retry: Callable[[RetriableError], None] | None = None) -> T:
        """``attempt(timeout)``, tried again after each ``RetriableError``; ``timeout`` is the request timeout,
        shortened to what is left of the budget. Raises ``RetriesExhausted`` with the last error when out of tries
        or time, ``Interrupted`` when the run stops during a wait."""
        start = self.clock.now()
        tries = 0
        while True:
            elapsed = self.clock.now() - start
            tries += 1
            try:
                return attempt(max(0.001, min(self.timeout_seconds, self.budget_seconds - elapsed)))
            except RetriableError as exc:
                error = exc
            elapsed = self.clock.now() - start
            wait = backoff_seconds(tries, self.base_seconds, error.retry_after)
            if tries >= self.max_tries or elapsed + wait >= self.budget_seconds:
                msg = (
                    f"{error}; gave up after {tries} tr{'y' if tries == 1 else 'ies'} in {elapsed:.1f} s "
                    f"(max_retries {self.max_tries - 1}, retry_budget_seconds {self.budget_seconds:g})"
                )
                raise RetriesExhausted(msg)
            logger.warning("%s; retry %d of %d in %.2f s", error, tries, self.max_tries - 1, wait)
            if on_retry is not None:
                on_retry(error)
            self.clock.sleep(wait)
