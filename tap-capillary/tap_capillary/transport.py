"""Every request of the tap, API and OAuth token alike: the outbound-HTTP policy, pacing and retries.

- https only, except http to a loopback host (the emulator): ``base_url_error``, checked with the config;
- TLS certificates always verified, against the system CAs or ``ca_bundle`` (else ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE``); there is no way to turn verification off, and a certificate that does not verify is a
  fatal error naming the host, not a retry;
- redirects never followed: the token request carries the client secret and API requests the token or Basic
  header, so a 3xx is a fatal error naming the endpoint, whatever its target;
- one retry layer per call: the tries of a call happen in ``RetryPolicy.call``; a call that gave up raises
  ``FatalAPIError``, which the call that needed it (an API request needing a token) does not retry;
- pacing: every try of an API request takes the client rate limit and one of ``max_workers`` request slots
  (``Transport.paced``), whichever thread sends it;
- every wait goes through the run's ``Clock``, which a termination signal stops.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from pyrate_limiter import Duration, Limiter, Rate
from requests.adapters import HTTPAdapter
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

T = TypeVar("T")
logger = logging.getLogger("tap-capillary")

#: What a try can fail with that is worth another try (statuses: ``errors.py`` raises ``RetriableAPIError``).
RETRIABLE_ERRORS = (
    RetriableAPIError,
    ConnectionResetError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
#: Longest wait between tries when the API sends no ``Retry-After`` (exponential backoff reaches it).
MAX_BACKOFF_SECONDS = 60.0
#: Longest a single try may take (connect, then between bytes), shortened to what is left of the budget.
TRY_TIMEOUT_SECONDS = 60.0


class Interrupted(Exception):
    """The run is stopping (a termination signal): a wait ended early and its call was abandoned."""


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1: where http stays on this machine."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return host == "localhost"


def base_url_error(base_url: Any) -> str | None:
    """Why ``base_url`` cannot be used, or None: a cluster host over https (http for loopback hosts only)."""
    parts = urlsplit(str(base_url))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        return f"base_url must be a cluster host such as https://eu.api.capillarytech.com, got {base_url!r}."
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (
            f"base_url must use https (http is accepted for loopback hosts only): credentials would travel in "
            f"cleartext to {parts.hostname}, got {base_url!r}."
        )
    return None


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def endpoint(request: requests.PreparedRequest) -> str:
    """``METHOD /path`` of a request, for messages (never the query string or headers)."""
    return f"{request.method} {urlsplit(request.url or '').path}"


def _refuse_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: it runs before requests would follow a redirect, so none is ever followed (and a 3xx
    is never read as an answer)."""
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location")
        response.close()
        to = f" to {_without_query(location)}" if location else ""
        msg = (
            f"{endpoint(response.request)} answered HTTP {response.status_code} redirecting{to}: redirects are "
            "never followed (requests carry credentials); set base_url to the cluster host that answers"
        )
        raise FatalAPIError(msg)


def new_session(base_url: str, pool_size: int, ca_bundle: str | None) -> requests.Session:
    """The session of every request of the run: certificates verified, redirects refused, keep-alive
    connections pooled for ``pool_size`` threads.

    Proxy and CA-bundle variables are read from the environment once here: with ``trust_env`` requests
    re-reads the environment on every request (a tenth of the tap's CPU). The proxies are those of ``base_url``
    (all requests go to that host), so ``NO_PROXY`` applies.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(base_url)
    session.verify = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.hooks["response"].append(_refuse_redirects)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
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


def backoff_seconds(tries: int, base_seconds: float, retry_after: float | None) -> float:
    """The wait after try ``tries``: exponential backoff from ``base_seconds`` with equal jitter (at least half of
    the step, so retries of many threads spread out yet still back off), never shorter than ``Retry-After``."""
    ceiling = min(MAX_BACKOFF_SECONDS, base_seconds * 2 ** (tries - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def certificate_error(error: requests.exceptions.SSLError, request: requests.PreparedRequest) -> FatalAPIError | None:
    """The fatal error for a certificate that does not verify; None for other TLS failures (a cut handshake)."""
    found = re.search(r"certificate verify failed: [^(')]*", str(error))
    if found is None:
        return None
    host = urlsplit(request.url or "").netloc
    msg = (
        f"{endpoint(request)}: the TLS certificate of {host} does not verify ({found.group(0).strip()}); "
        "ca_bundle names other CA certificates to trust"
    )
    return FatalAPIError(msg)


class Clock:
    """Monotonic time, and waits that end at once when the run stops: after ``stop()`` (the termination signal
    handler) every current and later ``sleep`` raises ``Interrupted``. Tests inject a fake."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self._stopped.wait(seconds)
        self.check()

    def check(self) -> None:
        """Raise ``Interrupted`` once the run is stopping: no request starts after a termination signal."""
        if self._stopped.is_set():
            raise Interrupted("stopping: a termination signal was received")

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_tries`` tries of a call, none starting later than ``budget_seconds`` after the first;
    between tries exponential backoff with jitter, or ``Retry-After`` when the API asks for longer."""

    max_tries: int
    budget_seconds: float
    clock: Clock = field(default_factory=Clock)
    base_seconds: float = 1.0

    def call(self, attempt: Callable[[float], T], what: str) -> T:
        """``attempt(timeout)`` until it returns, tried again after each of ``RETRIABLE_ERRORS``; ``timeout`` is
        the try's timeout, shortened to what is left of the budget. Raises ``FatalAPIError`` naming ``what``
        and the last error when out of tries or time, ``Interrupted`` when the run stops during a wait."""
        start = self.clock.now()
        tries = 0
        while True:
            tries += 1
            self.clock.check()
            left = self.budget_seconds - (self.clock.now() - start)
            try:
                return attempt(max(0.1, min(TRY_TIMEOUT_SECONDS, left)))
            except requests.exceptions.SSLError as exc:
                request = exc.request
                fatal = certificate_error(exc, request) if isinstance(request, requests.PreparedRequest) else None
                if fatal is not None:
                    raise fatal from None
                error: BaseException = exc
            except RETRIABLE_ERRORS as exc:
                error = exc
            elapsed = self.clock.now() - start
            retry_after = retry_after_seconds(getattr(error, "response", None))
            wait = backoff_seconds(tries, self.base_seconds, retry_after)
            reason = str(error) if isinstance(error, RetriableAPIError) else f"{type(error).__name__} on {what}"
            if tries >= self.max_tries or elapsed + wait > self.budget_seconds:
                msg = (
                    f"Giving up after {tries} tr{'y' if tries == 1 else 'ies'} in {elapsed:.1f} s: {reason} "
                    f"(max_retries {self.max_tries - 1}, retry_budget_seconds {self.budget_seconds:g}"
                    f"{f', Retry-After {retry_after:g} s' if retry_after is not None else ''})"
                )
                raise FatalAPIError(msg) from None
            logger.warning("Retrying after %s in %.2f s (try %d of %d)", reason, wait, tries, self.max_tries)
            self.clock.sleep(wait)


class Transport:
    """What every request of the run shares: the session, the retry policy, and the pacing of API requests (the
    client rate limit and ``max_in_flight`` request slots)."""

    def __init__(
        self, *, session: requests.Session, retry: RetryPolicy, requests_per_minute: int, max_in_flight: int
    ) -> None:
        self.session = session
        self.retry = retry
        self.rate_limiter = Limiter(Rate(requests_per_minute, Duration.MINUTE))
        self.request_slots = threading.BoundedSemaphore(max_in_flight)

    @contextmanager
    def paced(self) -> Iterator[None]:
        """One try of an API request: within the rate limit and the requests in flight."""
        self.rate_limiter.try_acquire("capillary")
        with self.request_slots:
            self.retry.clock.check()  # the wait for a slot may have outlasted the run
            yield
