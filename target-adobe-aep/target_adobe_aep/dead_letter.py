"""The dead letter: a JSONL file of every record that AEP will not get, with the reason, so none is lost."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

logger = logging.getLogger(__name__)


def _json_default(value: Any) -> Any:
    """Decimals (records decoded the SDK's way) stay numbers, so a replay reads what the tap wrote."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def serialized(value: Any) -> bytes:
    """``value`` as the dead letter writes it: compact bytes to hold until needed, then ``orjson.Fragment(…)``."""
    # orjson's bytes keep the capacity its buffer grew to (4 KB or more); a copy holds exactly the JSON.
    return bytes(memoryview(orjson.dumps(value, default=_json_default)))


PRIVATE_MODE = 0o600  # files that hold records (personal data): readable by their owner only


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened to append (unbuffered: see ``write_all``), created (with its directory) readable and
    writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    with os.fdopen(descriptor, "ab", buffering=0) as file:
        yield file


def write_all(file: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file: a failure leaves no buffered rest to be written later (when
    the file closes), after a partial write was cut off."""
    view = memoryview(data)
    while view:
        view = view[file.write(view) :]


def _end_of_last_line(file: BinaryIO, size: int) -> int:
    """The offset just after the last newline of ``file`` (``size`` bytes long), 0 if it has none."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        file.seek(start)
        cut = file.read(end - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


class DeadLetterError(RuntimeError):
    """The dead letter cannot be written (disk full, read-only, ...): the batch is not acknowledged."""


class DeadLetter:
    """Appends entries to one JSONL file, durably (fsync) before the batch that produced them is acknowledged.

    An entry holds: ``time``, ``stream``, ``key`` (the record's key properties), ``reason``, ``http_status`` (for
    rejections by AEP), ``xdm`` (the converted payload, when conversion got that far) and ``record`` (the source
    record, for replay). Nothing else: no request headers, no tokens.

    The file is created 0600 (it holds personal data) and is always valid JSONL: a write that fails is cut off
    again, and on open a partial last line (a write cut short by a kill or a full disk) is moved to
    ``<path>.torn`` and reported. The run that wrote it failed before acknowledging that batch, so its records
    are sent again.
    """

    def __init__(self, path: str | Path, report: Callable[[str], None] = logger.warning) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.count = 0
        self.torn_lines = 0
        self._repair(report)

    @property
    def torn_path(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    def _repair(self, report: Callable[[str], None]) -> None:
        """Move a partial last line aside. Only reads unless there is one, so a dead letter on a read-only volume
        stops the run only when a record must be written to it."""
        try:
            with self.path.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                keep = _end_of_last_line(file, size)
        except FileNotFoundError:
            return
        except OSError as exc:
            msg = f"cannot read the dead letter {self.path}: {exc.strerror or exc}"
            raise DeadLetterError(msg) from None
        if keep == size:
            return
        try:
            with self.path.open("r+b") as file:
                file.seek(keep)
                tail = file.read()
                with private_file(self.torn_path) as torn:
                    write_all(torn, tail + b"\n")
                    os.fsync(torn.fileno())
                file.truncate(keep)
                os.fsync(file.fileno())
        except OSError as exc:
            msg = (
                f"cannot repair the dead letter {self.path}, which ends with a partial line (a write cut short): "
                f"{exc.strerror or exc}"
            )
            raise DeadLetterError(msg) from None
        self.torn_lines = 1
        report(
            f"The dead letter {self.path} ended with a partial line ({len(tail)} bytes, from a write cut short): "
            f"moved to {self.torn_path}; the records it held were not acknowledged, so they are sent again"
        )

    def write(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        lines = b"".join(
            orjson.dumps({"time": now, **entry}, default=_json_default, option=orjson.OPT_APPEND_NEWLINE)
            for entry in entries
        )
        with self._lock:
            try:
                with private_file(self.path) as file:
                    start = file.seek(0, os.SEEK_END)
                    try:
                        write_all(file, lines)
                        os.fsync(file.fileno())
                    except OSError:
                        with contextlib.suppress(OSError):  # cut a partial write off (else _repair moves it later)
                            file.truncate(start)
                        raise
            except OSError as exc:
                reason = exc.strerror or exc
                msg = f"cannot write the dead letter {self.path}: {reason}; nothing of the batch is acknowledged"
                raise DeadLetterError(msg) from None
            self.count += len(entries)
