"""Benchmark mode: rendered GET responses kept per (path, sorted query) until the data changes.

Rendering (SQL, dicts, JSON) is most of the emulator's own CPU per request; with the cache on, a repeated
request costs only aiohttp, the request log, faults and auth, which still run for every request.
"""

from __future__ import annotations

from aiohttp import web

from emulators.capillary.store import LoyaltyStore

Key = tuple[str, tuple[tuple[str, str], ...]]


class ResponseCache:
    """(status, JSON body) per request key, at most ``max_bytes`` of bodies (oldest dropped first)."""

    def __init__(self, store: LoyaltyStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.entries: dict[Key, tuple[int, bytes]] = {}
        self.size = 0
        self.version = store.data_version
        self.hits = 0

    @staticmethod
    def key(request: web.Request) -> Key:
        return request.path, tuple(sorted(request.query.items()))

    def get(self, key: Key) -> tuple[int, bytes] | None:
        if self.version != self.store.data_version:
            self.entries.clear()
            self.size = 0
            self.version = self.store.data_version
        hit = self.entries.get(key)
        self.hits += hit is not None
        return hit

    def put(self, key: Key, status: int, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        while self.size + len(body) > self.max_bytes:
            self.size -= len(self.entries.pop(next(iter(self.entries)))[1])
        self.entries[key] = (status, body)
        self.size += len(body)
