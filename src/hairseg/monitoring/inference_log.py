"""The inference log: per-request image statistics written by the serving path.

Each served request adds one record (statistics only, never pixels) with the schema of
the Feast push source ``inference_stats_push`` (:data:`INFERENCE_LOG_SCHEMA`). The
writer sits on the serving hot path, so :meth:`InferenceLogWriter.append` only checks
the record's keys and appends it to an in-memory buffer under a lock; a background thread
(and every ``flush_every`` records) writes the buffer out as one Parquet part file, first
to a temporary name and then renamed, so a reader never sees half a file and a crash
loses at most the unflushed buffer.

:func:`read_inference_log` concatenates the parts; the drift check reads it as its
"current" data.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hairseg.closing import Closing
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "INFERENCE_LOG_SCHEMA",
    "STAT_FIELDS",
    "InferenceLogWriter",
    "read_inference_log",
]

log = logging.getLogger(__name__)

# The ImageStats fields (hairseg.imaging.ImageStats); hair_coverage is the *predicted*
# coverage at serving time.
STAT_FIELDS: tuple[str, ...] = (
    "width",
    "height",
    "brightness",
    "contrast",
    "sharpness",
    "saturation",
    "hue_mean",
    "hair_coverage",
)

INFERENCE_LOG_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("event_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("brightness", pa.float64()),
        pa.field("contrast", pa.float64()),
        pa.field("sharpness", pa.float64()),
        pa.field("saturation", pa.float64()),
        pa.field("hue_mean", pa.float64()),
        pa.field("hair_coverage", pa.float64()),
    ]
)
_FIELDS = frozenset(INFERENCE_LOG_SCHEMA.names)
_REQUIRED = frozenset({"request_id", *STAT_FIELDS})
_PART_GLOB = "part-*.parquet"


def _now() -> datetime:
    return datetime.now(UTC)


class InferenceLogWriter(Closing):
    """Buffer inference records and flush them to Parquet part files in ``log_dir``.

    Thread-safe. ``append`` never does I/O unless the buffer reaches ``flush_every``
    records; a daemon thread also flushes every ``flush_seconds`` so a quiet server's
    records reach disk. Call :meth:`close` on shutdown (it flushes); the writer is also a
    context manager.
    """

    def __init__(
        self, log_dir: str | Path, flush_every: int = 256, flush_seconds: float = 10.0
    ) -> None:
        if flush_every < 1:
            raise HairsegError(f"flush_every must be >= 1, got {flush_every}", exit_code=EXIT_USAGE)
        if flush_seconds <= 0:
            raise HairsegError(
                f"flush_seconds must be > 0, got {flush_seconds}", exit_code=EXIT_USAGE
            )
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _buffer
        self._write_lock = threading.Lock()  # serialises part writes
        self._seq = itertools.count()
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._flush_periodically, name="inference-log-flusher", daemon=True
        )
        self._thread.start()

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one request's statistics. Unknown or missing keys raise :class:`HairsegError`.

        ``event_timestamp`` defaults to now (UTC); ``customer_id`` and ``model_version``
        default to null.
        """
        keys = record.keys()
        unknown = keys - _FIELDS
        if unknown:
            raise HairsegError(
                f"inference log record has unknown field(s) {sorted(unknown)}; "
                f"accepted: {sorted(_FIELDS)} (statistics only, never images)"
            )
        missing = _REQUIRED - keys
        if missing:
            raise HairsegError(f"inference log record lacks field(s) {sorted(missing)}")
        row = dict(record)
        if row.get("event_timestamp") is None:
            row["event_timestamp"] = _now()
        with self._lock:
            if self._closed:
                raise HairsegError("inference log writer is closed")
            self._buffer.append(row)
            full = len(self._buffer) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> Path | None:
        """Write buffered records to a new part file; returns its path (None if empty)."""
        with self._write_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return None
            return self._write_part(rows)

    def _write_part(self, rows: list[dict[str, Any]]) -> Path | None:
        try:
            table = pa.Table.from_pylist(rows, schema=INFERENCE_LOG_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            # One bad record must not cost the whole buffer: keep the rows that convert.
            good = [r for r in rows if _converts(r)]
            log.warning("inference log: dropped %d malformed record(s)", len(rows) - len(good))
            if not good:
                return None
            table = pa.Table.from_pylist(good, schema=INFERENCE_LOG_SCHEMA)
        stamp = _now().strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{os.getpid()}-{next(self._seq):06d}.parquet"
        final = self.log_dir / name
        tmp = self.log_dir / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        return final

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # keep serving; the records stay lost only for this part
                log.exception("inference log flush failed")

    def close(self) -> None:
        """Stop the flusher thread and write what is buffered. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._thread.join(timeout=max(1.0, self.flush_seconds))
        self.flush()


def _converts(row: dict[str, Any]) -> bool:
    try:
        pa.Table.from_pylist([row], schema=INFERENCE_LOG_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return False
    return True


def read_inference_log(log_dir: str | Path) -> pd.DataFrame:
    """Read every part file under ``log_dir`` into one frame sorted by event time.

    A missing folder, a folder without part files, or parts without rows raise
    :class:`HairsegError` (exit code 2): the drift check must never pass silently on no data.
    """
    log_dir = Path(log_dir)
    if not log_dir.exists():
        raise HairsegError(f"inference log {log_dir} does not exist", exit_code=EXIT_USAGE)
    parts = [log_dir] if log_dir.is_file() else sorted(log_dir.glob(_PART_GLOB))
    if not parts:
        raise HairsegError(
            f"inference log {log_dir} holds no {_PART_GLOB} files", exit_code=EXIT_USAGE
        )
    try:
        tables = [pq.read_table(p) for p in parts]
    except (OSError, pa.ArrowInvalid) as exc:
        raise HairsegError(
            f"inference log {log_dir} has an unreadable part: {exc}", exit_code=EXIT_USAGE
        ) from None
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowInvalid as exc:
        raise HairsegError(
            f"inference log parts in {log_dir} disagree on schema: {exc}", exit_code=EXIT_USAGE
        ) from None
    df = table.to_pandas()
    if df.empty:
        raise HairsegError(f"inference log {log_dir} holds no rows", exit_code=EXIT_USAGE)
    if "event_timestamp" in df.columns:
        df = df.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    return df
