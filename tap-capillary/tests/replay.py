"""A loopback HTTP server that answers with Capillary's published sample responses, unmodified, by route.

Routes are ``"METHOD /path/glob"`` with optional ``?name=value`` conditions on the query string; the first
route that matches answers. A route answers with its replies in turn, repeating the last one. Every
request is logged (method, path, query, JSON body).
"""

from __future__ import annotations

import fnmatch
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulators.capillary.doc_samples import sample_bytes


@dataclass(frozen=True)
class Reply:
    """A published sample (a file of ``emulators.capillary.doc_samples``), or ``body`` bytes, with a status."""

    sample: str | None = None
    status: int = 200
    body: bytes | None = None

    def content(self) -> bytes:
        return self.body if self.body is not None else sample_bytes(self.sample or "")


@dataclass
class Route:
    method: str
    path: str
    query: dict[str, str]
    replies: list[Reply]
    served: int = 0

    @classmethod
    def parse(cls, key: str, replies: Reply | list[Reply]) -> Route:
        method, _, target = key.partition(" ")
        path, _, query = target.partition("?")
        return cls(method, path, dict(parse_qsl(query)), replies if isinstance(replies, list) else [replies])

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        return (
            method == self.method
            and fnmatch.fnmatchcase(path, self.path)
            and all(query.get(k) == v for k, v in self.query.items())
        )

    def next_reply(self) -> Reply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ReplayServer:
    def __init__(self, routes: dict[str, Reply | list[Reply]]) -> None:
        self.routes = [Route.parse(key, replies) for key, replies in routes.items()]
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self, path_glob: str = "*") -> list[Request]:
        with self._lock:
            return [r for r in self.log if fnmatch.fnmatchcase(r.path, path_glob)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        with self._lock:
            self.log.append(Request(method, url.path, query, json.loads(body) if body else None, headers))
            route = next((r for r in self.routes if r.matches(method, url.path, query)), None)
            if route is None:
                return 404, b""
            reply = route.next_reply()
        return reply.status, reply.content()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, content = server._answer(self.command, self.path, body, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _reply

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads ``ReplayServer.log``."""

        return Handler
