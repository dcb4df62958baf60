"""Shared fixtures: a target configured against the in-process Adobe emulator, and Singer message helpers."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emulators.adobe import ADOBE
from emulators.server import REQUEST_LOG, BackgroundServer
from target_adobe_aep.connection import Clock, Interrupted
from target_adobe_aep.target import TargetAdobeAEP

DATA = Path(__file__).parent / "data"
TAP_SCHEMAS = Path(__file__).parents[2] / "tap-capillary" / "tap_capillary" / "schemas"
SAMPLES: dict[str, list[dict]] = json.loads((DATA / "capillary_records.json").read_text())
KEY_PROPERTIES: dict[str, list[str]] = json.loads((DATA / "key_properties.json").read_text())
STREAMS = tuple(KEY_PROPERTIES)


def tap_schema(stream: str) -> dict:
    return json.loads((TAP_SCHEMAS / f"{stream}.json").read_text())


def schema_message(stream: str, schema: dict | None = None, key_properties: list[str] | None = None) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": schema or tap_schema(stream),
        "key_properties": KEY_PROPERTIES.get(stream, []) if key_properties is None else key_properties,
    }


def record_message(stream: str, record: dict) -> dict:
    return {"type": "RECORD", "stream": stream, "record": record}


def state_message(value: dict) -> dict:
    return {"type": "STATE", "value": value}


def stream_messages(stream: str, records: Iterable[dict], state: dict | None = None) -> list[dict]:
    messages = [schema_message(stream), *(record_message(stream, r) for r in records)]
    return [*messages, state_message(state)] if state is not None else messages


class Output(io.StringIO):
    """The target's captured output, each write also passed to ``on_write``."""

    def __init__(self, on_write: Callable[[str], None] | None) -> None:
        super().__init__()
        self.on_write = on_write

    def write(self, text: str) -> int:
        if self.on_write is not None:
            self.on_write(text)
        return super().write(text)


class FakeClock(Clock):
    """The run's clock moved only by its waits and by ``advance``: waits take no time, and still end in
    ``Interrupted`` once the clock is stopped. Its time of day starts at ``START``."""

    START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.time = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.time

    def utc_now(self) -> datetime.datetime:
        return self.START + datetime.timedelta(seconds=self.time - 1000.0)

    def sleep(self, seconds: float) -> None:
        if self.stopped:
            raise Interrupted("stopping")
        with self._lock:
            self.time += seconds
            self.waits.append(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.time += seconds


@dataclass
class Run:
    target: TargetAdobeAEP
    states: list[dict]
    error: BaseException | None = None


@dataclass
class Aep:
    """The emulator plus a target configuration pointing at it."""

    server: BackgroundServer
    tmp_path: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        return self.server.app[ADOBE]

    @property
    def dead_letter_path(self) -> Path:
        return Path(self.config["dead_letter_path"])

    def dead_letters(self) -> list[dict]:
        if not self.dead_letter_path.exists():
            return []
        return [json.loads(line) for line in self.dead_letter_path.read_text().splitlines()]

    def run(
        self,
        messages: Sequence[dict | str | Callable[[], object]],
        *,
        expect_error: bool = False,
        clock: Clock | None = None,
        on_output: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> Run:
        """Run the target in-process over ``messages`` (on ``clock`` when given); returns the STATE values it
        printed. A string among the messages is sent as the line it is; a callable runs when the target reads up
        to it (to revoke tokens, ...);
        ``on_output`` sees each write to the target's output as it happens.
        """
        target = TargetAdobeAEP(config={**self.config, **overrides})
        if clock is not None:
            target.clock = clock
        out = Output(on_output)
        error = None

        def lines() -> Iterator[str]:
            for item in messages:
                if callable(item):
                    item()
                else:
                    yield (item if isinstance(item, str) else json.dumps(item)) + "\n"

        with contextlib.redirect_stdout(out):
            try:
                target.listen(lines())  # type: ignore[arg-type]
            except Exception as exc:
                if not expect_error:
                    raise
                error = exc
        if expect_error and error is None:
            pytest.fail("the target was expected to fail but succeeded")
        states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
        return Run(target, states, error)

    def stored(self, dataset_id: str) -> list[dict]:
        """Valid messages the emulated data lake holds for ``dataset_id`` (xdmEntity bodies)."""
        return self._page("messages", dataset_id)

    def failed(self, dataset_id: str) -> list[dict]:
        return self._page("failed", dataset_id)

    def _page(self, kind: str, dataset_id: str) -> list[dict]:
        store = self.state.store
        return self.server.call(getattr(store, kind), dataset_id, 100_000, 0)

    def counts(self) -> dict[str, dict[str, int]]:
        return self.server.call(self.state.store.counts)

    def requests(self, path_prefix: str) -> list[dict]:
        return [e for e in self.server.app[REQUEST_LOG].entries if e["path"].startswith(path_prefix)]


class Handler(BaseHTTPRequestHandler):
    """Answers every request with ``server.answer(handler)`` -> (status, headers, body); counts requests."""

    server: LoopbackServer

    body = b""

    def _answer(self) -> None:
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits.append(self.path)
        status, headers, body = self.server.answer(self)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackServer(ThreadingHTTPServer):
    """A server on a free loopback port answering as ``answer`` says (for what the emulator does not do)."""

    def __init__(self, answer: Callable[[Handler], tuple[int, dict[str, str], bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answer = answer
        self.hits: list[str] = []  # requests answered
        self.connections = 0  # connections accepted, TLS handshakes that failed included

    def get_request(self) -> tuple[Any, Any]:
        self.connections += 1
        return super().get_request()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone before its answer (a killed target) is expected here


@contextlib.contextmanager
def serving(answer: Callable[[Handler], tuple[int, dict[str, str], bytes]],
            tls: ssl.SSLContext | None = None) -> Iterator[LoopbackServer]:  # fmt: skip
    server = LoopbackServer(answer)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base_url(server: LoopbackServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def aep(adobe_emulator: BackgroundServer, tmp_path: Path) -> Aep:
    cfg = adobe_emulator.config
    dcs = adobe_emulator.app[ADOBE].dcs
    client_id, client_secret = next(iter(cfg.clients.items()))
    config = {
        "client_id": client_id,
        "client_secret": client_secret,
        "org_id": cfg.org_id,
        "ims_url": f"{adobe_emulator.base_url}/ims/token/v3",
        "platform_url": adobe_emulator.base_url,
        "sandbox_name": cfg.sandbox,
        "inlet_url": f"{adobe_emulator.base_url}/collection/{cfg.auth_inlet_id}",
        "flow_id": "11111111-2222-3333-4444-555555555555",
        "tenant_id": cfg.tenant_id,
        "dead_letter_path": str(tmp_path / "dead-letter.jsonl"),
        "dry_run_path": str(tmp_path / "dry-run"),
        "retry_backoff_ms": 10,
    }
    for kind, dataset_id in (("profile", cfg.profile_dataset_id), ("event", cfg.event_dataset_id)):
        schema = dcs.schema(dataset_id)  # None in an empty (provisioned=False) sandbox
        if schema is not None:
            config.update({f"{kind}_dataset_id": dataset_id, f"{kind}_schema_id": schema.id})
    return Aep(adobe_emulator, tmp_path, config)


def admin(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``target-adobe-aep-admin`` in a process of its own, as a user runs it."""
    command = [str(Path(sys.executable).parent / "target-adobe-aep-admin"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def write_config(aep: Aep, **overrides: object) -> str:
    """The target configuration as a JSON file (``--config``), with ``overrides``; ``None`` leaves a setting out."""
    path = aep.tmp_path / "config.json"
    config = {key: value for key, value in {**aep.config, **overrides}.items() if value is not None}
    path.write_text(json.dumps(config))
    return str(path)
