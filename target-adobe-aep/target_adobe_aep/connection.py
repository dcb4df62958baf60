"""What every call to Adobe shares: the URL policy, the HTTP session and the retry policy."""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import backoff
import requests
from requests.adapters import HTTPAdapter

T = TypeVar("T")
logger = logging.getLogger(__name__)

USER_AGENT = "target-adobe-aep"

# Statuses Adobe documents as transient: 429 (rate limit) and 5xx ("retry at least 3 times using an exponential
# back-off strategy", Data Ingestion OpenAPI, 503).
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Errors after which the request may not have been processed; all our calls are safe to repeat.
CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class ConfigError(ValueError):
    """A setting is missing or unusable; raised before anything is sent."""


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


def new_session(pool_size: int) -> requests.Session:
    """A session with certificate verification on and a connection pool sized for ``pool_size`` threads."""
    session = requests.Session()
    session.verify = True
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class RetriableError(Exception):
    """A transient failure: 429, 5xx or a dropped connection. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header as seconds; it may be delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def raise_if_retriable(response: requests.Response, what: str) -> None:
    if response.status_code in RETRIABLE_STATUSES:
        raise RetriableError(f"{what} answered HTTP {response.status_code}", retry_after_seconds(response))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff that never waits less than ``Retry-After``."""

    max_tries: int = 6
    base_seconds: float = 0.5
    max_wait_seconds: float = 60.0

    def _waits(self) -> Generator[float, RetriableError, None]:
        # backoff sends each caught exception into the wait generator, which is how Retry-After gets in.
        error = yield  # type: ignore[misc]
        attempt = 0
        while True:
            delay = random.uniform(0, min(self.max_wait_seconds, self.base_seconds * 2**attempt))
            hint = min(error.retry_after or 0.0, self.max_wait_seconds)
            attempt += 1
            error = yield max(delay, hint)

    def call(self, fn: Callable[[], T], on_retry: Callable[[RetriableError, float], None] | None = None) -> T:
        """Run ``fn``; on ``RetriableError`` wait and try again, re-raising the last error after ``max_tries``."""

        def backing_off(details: dict) -> None:
            error = details["exception"]
            logger.warning("%s; retry %d in %.2f s", error, details["tries"], details["wait"])
            if on_retry is not None:
                on_retry(error, details["wait"])

        retrying = backoff.on_exception(
            self._waits,
            RetriableError,
            max_tries=self.max_tries,
            jitter=None,
            on_backoff=backing_off,
            logger=None,
        )
        return retrying(fn)()
