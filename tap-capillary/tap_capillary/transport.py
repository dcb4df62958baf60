"""Every request of the tap, API and OAuth token alike: the outbound-HTTP policy, pacing and retries.

- https only, except http to a loopback host (the emulator): ``base_url_error``, checked with the config;
- TLS certificates always verified, against the system CAs or ``ca_bundle`` (else ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE``); there is no way to turn verification off, and a certificate that does not verify is a
  fatal error naming the host, not a retry;
- redirects never followed: the token request carries the client secret and API requests the token or Basic
  header, so a 3xx is a fatal error naming the endpoint, whatever its target;
- one retry layer per call: the tries of a call happen in ``RetryPolicy.call``; a call that gave up raises
  ``FatalAPIError``, which the call that needed it (an API request needing a token) does not retry;
- pacing: every try of an API request waits for its API's turn (``ApiPace``: a configured budget, else adaptive),
  then for the turn of the overall budget, then takes one of ``max_workers`` request slots (``Transport.paced``),
  whichever thread sends it; a 429 (``RateLimitedError``) slows its API down;
- every wait goes through the run's ``Clock``, which a termination signal stops.

Pacing is written here rather than taken from a rate-limit library (pyrate-limiter was used before): adaptive
pacing changes an API's rate while requests wait, ``Retry-After`` holds requests already queued, and every wait
must end when the run stops and run on a test's fake clock; pyrate-limiter's rates are fixed and it sleeps with
``time.sleep``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
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

    def sleep_until(self, moment: float) -> None:
        """Wait until ``now()`` reaches ``moment`` (pacing; ``sleep`` is for retries)."""
        self.sleep(max(0.0, moment - self.now()))

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


class RateLimitedError(RetriableAPIError):
    """The API answered 429 "too many requests" (as its HTTP status or its body's code): retried, and its API
    slowed down (``ApiPace.throttled``)."""


#: Adaptive pacing of an API without a budget (additive increase, multiplicative decrease): after a 429 its rate
#: becomes ``THROTTLE_FACTOR`` times the rate it was sent at, then grows by ``PROBE_STEP`` of that each second
#: once the server takes requests again. Chosen on a simulated sliding-window limit (``tests/test_pacing.py``):
#: a deeper cut or a faster probe trades more 429s for less time, a shallower one the reverse.
THROTTLE_FACTOR = 0.85
PROBE_STEP = 0.01
#: The rate an API was sent at, when it answers 429, is measured over the sends of the last minute (holds
#: included): Capillary's limits are per minute, and what a saturated minute got through is the server's limit.
OBSERVED_SECONDS = 60.0
#: The slowest adaptive pace: one request a minute.
MIN_RATE = 1 / 60


class ApiPace:
    """When the next request to one API (or to any, for the overall budget) may start.

    A budget (``per_minute``) spaces requests ``60 / per_minute`` seconds apart: evenly, never in bursts, so a
    server counting requests over any window sees at most the budget. Without one the pace is adaptive: requests
    go as fast as the other limits allow until the API answers 429; then the pace drops to ``THROTTLE_FACTOR``
    of the rate the API was sent at and probes back up by ``PROBE_STEP`` of it per second, up to ``ceiling``
    (requests per second), until the next 429. 429s answering requests sent before the last cut do not cut again:
    they were sent at the old pace. Either way, a 429's ``Retry-After`` holds every request to the API until it
    has passed.

    Threads reserve start times in order under a lock and wait for them outside it; a hold that begins while a
    thread waits sends it back to the queue.
    """

    def __init__(self, api: str, clock: Clock, per_minute: int | None = None, *, ceiling: float | None = None) -> None:
        self.api = api
        self.clock = clock
        self.budget = per_minute
        self.ceiling = ceiling
        self.rate: float | None = None if per_minute is None else per_minute / 60  # requests/s; None: unpaced
        self._lock = threading.Lock()
        self._next = -math.inf  # the earliest start of the next request
        self._hold_until = -math.inf
        self._holds = 0  # how many holds began: a waiting thread whose hold count moved queues again
        self._cut_at = -math.inf
        self._cut_rate: float | None = None
        self._sent: deque[float] = deque()  # adaptive: starts of the last OBSERVED_SECONDS
        self._warned = False

    @property
    def adaptive(self) -> bool:
        return self.budget is None

    def acquire(self) -> float:
        """Wait for this API's turn; returns the request's start (to give to ``throttled``)."""
        while True:
            with self._lock:
                now = self.clock.now()
                start = max(now, self._next, self._hold_until)
                rate = self._rate_at(now)
                if rate is not None:
                    self._next = start + 1 / rate
                holds = self._holds
            if start > now:
                self.clock.sleep_until(start)
            with self._lock:
                if holds == self._holds:
                    if self.adaptive:
                        self._sent.append(start)
                        while self._sent[0] < start - OBSERVED_SECONDS:
                            self._sent.popleft()
                    return start

    def _rate_at(self, now: float) -> float | None:
        """The pace now: a budget's, or an adaptive one probing up since its last cut (under the lock)."""
        if self._cut_rate is not None:
            grown = self._cut_rate * (1 + PROBE_STEP * max(0.0, now - self._cut_at))
            self.rate = grown if self.ceiling is None else min(grown, self.ceiling)
        return self.rate

    def _observed_rate(self, now: float) -> float | None:
        """Requests per second sent over the last ``OBSERVED_SECONDS`` (at least a second's span), if any."""
        while self._sent and self._sent[0] < now - OBSERVED_SECONDS:
            self._sent.popleft()
        if not self._sent:
            return None
        return len(self._sent) / max(1.0, now - self._sent[0])

    def throttled(self, sent_at: float, retry_after: float | None) -> None:
        """The request started at ``sent_at`` was answered 429, with ``Retry-After`` if given."""
        with self._lock:
            now = self.clock.now()
            if retry_after and now + retry_after > self._hold_until:
                self._hold_until = self._next = now + retry_after
                self._holds += 1
            if self.budget is not None:
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "Capillary API %s answered 429 although paced at its budget of %d requests/minute "
                        "(api_requests_per_minute): the server's limit is lower",
                        self.api,
                        self.budget,
                    )
                return
            if sent_at < self._cut_at:
                return
            was = [r for r in (self._rate_at(now), self._observed_rate(now)) if r is not None]
            self._cut_rate = self.rate = max(MIN_RATE, THROTTLE_FACTOR * min(was)) if was else MIN_RATE
            self._cut_at = max(now, self._hold_until)  # probing starts when the server takes requests again
            # A queued thread keeps its start: the new pace spaces the requests after it.
            logger.info(
                "Capillary API %s answered 429: pacing it at %.2f requests/s%s",
                self.api,
                self.rate,
                f" (after Retry-After {retry_after:g} s)" if retry_after else "",
            )


class Pacing:
    """The overall budget (``requests_per_minute``) and one pace per API: its budget from
    ``api_requests_per_minute``, else adaptive (never above the overall budget)."""

    def __init__(self, clock: Clock, requests_per_minute: int, api_budgets: dict[str, int]) -> None:
        self.clock = clock
        self.overall = ApiPace("(all)", clock, requests_per_minute)
        self._budgets = api_budgets
        self._apis: dict[str, ApiPace] = {}
        self._lock = threading.Lock()

    def api(self, name: str) -> ApiPace:
        with self._lock:
            if name not in self._apis:
                ceiling = self.overall.rate
                self._apis[name] = ApiPace(name, self.clock, self._budgets.get(name), ceiling=ceiling)
            return self._apis[name]

    def acquire(self, api: str) -> float:
        """Wait for the API's turn, then the overall budget's; returns the request's start."""
        self.api(api).acquire()
        return self.overall.acquire()


class Transport:
    """What every request of the run shares: the session, the retry policy, and the pacing of API requests (per
    API, overall, and ``max_in_flight`` request slots)."""

    def __init__(
        self,
        *,
        session: requests.Session,
        retry: RetryPolicy,
        requests_per_minute: int,
        max_in_flight: int,
        api_budgets: dict[str, int] | None = None,
    ) -> None:
        self.session = session
        self.retry = retry
        self.pacing = Pacing(retry.clock, requests_per_minute, api_budgets or {})
        self.request_slots = threading.BoundedSemaphore(max_in_flight)

    @contextmanager
    def paced(self, api: str) -> Iterator[None]:
        """One try of a request to ``api`` (its documented name, ``client.api_name``): in its API's turn and the
        overall budget's, within the requests in flight; a 429 slows the API down."""
        sent_at = self.pacing.acquire(api)
        with self.request_slots:
            self.retry.clock.check()  # the wait for a slot may have outlasted the run
            try:
                yield
            except RateLimitedError as exc:
                self.pacing.api(api).throttled(sent_at, retry_after_seconds(exc.response))
                raise
