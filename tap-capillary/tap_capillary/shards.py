"""Shards: disjoint slices of an org's customers, each read by a run of its own, with a state of its own.

A customer belongs to shard ``shard_of(customer_id, shard_count)``: the first 8 bytes of the BLAKE2b digest of the
decimal Capillary customer id, big-endian, modulo ``shard_count``. It depends on nothing but the id, so it is the
same in every run, process, machine and Python version (Python's ``hash`` is salted per process), whichever way the
customer was found: entity search gives ids; an identifiers-file row gives an id, or a mobile, email or external id
that is first resolved to the customer's id (each shard resolves every such row, one ``v1.1/customer/get`` per
10 rows, and keeps the customers that are its own). Org-level streams (``stores``) are read by shard 0 only.

Each shard's stream states record its layout (``shard``: index and count); a state is refused by a run of another
layout: with other shard counts the same customer may belong to another shard, so bookmarks written under one
layout would skip customers or read them twice under another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


def shard_of(customer_id: int, shard_count: int) -> int:
    """The shard, 0 to ``shard_count - 1``, that reads this customer."""
    digest = hashlib.blake2b(str(int(customer_id)).encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


@dataclass(frozen=True)
class Shard:
    """The slice of the org one run reads: ``index`` of ``count`` (0 of 1: everything)."""

    index: int = 0
    count: int = 1

    @classmethod
    def from_config(cls, config: Any) -> Shard:
        return cls(int(config.get("shard_index") or 0), int(config.get("shard_count") or 1))

    def includes(self, customer_id: int) -> bool:
        return self.count == 1 or shard_of(customer_id, self.count) == self.index

    @property
    def reads_org_streams(self) -> bool:
        """Whether this run reads the streams that are not per customer (``stores``)."""
        return self.index == 0

    @property
    def layout(self) -> dict[str, int] | None:
        """What the stream states of a sharded run record (``windows.complete_window``); None when unsharded."""
        return {"index": self.index, "count": self.count} if self.count > 1 else None

    def __str__(self) -> str:
        return describe_layout(self.layout)


def describe_layout(layout: Any) -> str:
    """A recorded layout (``Shard.layout``) in words."""
    if layout is None:
        return "an unsharded run"
    if isinstance(layout, dict):
        return f"shard_index {layout.get('index')} of shard_count {layout.get('count')}"
    return f"an unknown shard layout {layout!r}"
