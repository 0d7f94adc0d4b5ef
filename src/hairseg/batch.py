"""Batch prediction: masks (and try-ons) for a folder, a glob or a bucket, resumably.

One pass is: list the inputs (:func:`list_inputs`, through fsspec: local paths, ``s3://``,
``gs://``, ``az://``), select a subset (:func:`select`, ``--shard i/n`` then ``--limit``),
then :func:`run_batch` sends every item not already done to worker processes, each holding
one :class:`~hairseg.inference.OnnxSegmenter` with one ORT thread. Every item becomes one
row (status, error, coverage, confidence, image statistics, model version, timings); a bad
file is a failed row, never the end of the run.

Output folder ``DEST`` (local)::

    masks/<id>.png            0/255 masks at the input resolution
    tryon/<id>.jpg            with a try-on shade
    images/<id>.<ext>         with ``as_dataset``: the input, so DEST is a dataset
    manifest.parquet          with ``as_dataset``: the dataset manifest (source=pseudo)
    confidence/<id>.png       with ``teacher``: per-pixel label confidence (0-255)
    results[-<i>-of-<n>].parquet   one row per input (the shard's table when sharded)
    .batch/<shard>/part-*.parquet  rows not yet compacted (a run that was killed)

With ``teacher`` (a :class:`~hairseg.data.pseudo_label.TeacherSpec`) the workers run the
pseudo-label teacher (MediaPipe priors, plus the current model if it names one) instead
of the model alone: DEST is a dataset (images shrunk to the teacher's ``max_side``, masks,
confidence maps, a manifest with ``source = pseudo`` and per-image confidence), and images
the teacher declines (no face, low confidence) are ``skipped`` rows with the reason.
``hairseg data pseudo-label`` is this mode.

Resumable: rows are flushed to part files atomically as they arrive; at the end (and at
the start of a rerun) parts and the table are compacted, keeping the latest row per id.
A rerun skips ids whose row is ``ok`` for the same model with its mask present and redoes
the rest, so an interrupted run finishes with the same table as an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hairseg.batch_worker import BatchConfig, InputItem, init_worker, model_version, process_item
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "RESULT_COLUMNS",
    "BatchConfig",
    "BatchSummary",
    "InputItem",
    "compact",
    "list_inputs",
    "model_version",
    "parse_shard",
    "process_item",
    "read_results",
    "render_summary",
    "results_path",
    "run_batch",
    "select",
    "summarise",
]

log = logging.getLogger(__name__)

PSEUDO_SOURCE = "pseudo"
_MAGIC = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# One row per input; the dtypes make every part file and the table agree.
RESULT_COLUMNS: dict[str, str] = {
    "id": "string",
    "uri": "string",
    "status": "string",  # ok | failed | skipped (the pseudo-label teacher declined it)
    "error": "string",
    "mask_path": "string",
    "tryon_path": "string",
    "image_path": "string",
    "confidence_path": "string",  # teacher mode: per-pixel confidence (0-255)
    "face_count": "Int64",  # teacher mode
    "bytes": "Int64",
    "width": "Int64",
    "height": "Int64",
    "hair_coverage": "float64",
    "confidence": "float64",  # mean max(p, 1 - p) at the network resolution
    "brightness": "float64",
    "contrast": "float64",
    "sharpness": "float64",
    "saturation": "float64",
    "hue_mean": "float64",
    "model_version": "string",
    "read_ms": "float64",
    "decode_ms": "float64",
    "infer_ms": "float64",
    "write_ms": "float64",
    "total_ms": "float64",
    "cpu_ms": "float64",  # CPU time of the worker process on this item
    "worker_pid": "Int64",
    "finished_at": "string",  # ISO 8601 UTC, microseconds: sorts in time order
}
# Columns that differ between two runs over the same inputs (timings, who, when).
VOLATILE_COLUMNS = ("read_ms", "decode_ms", "infer_ms", "write_ms", "total_ms", "cpu_ms")
VOLATILE_COLUMNS += ("worker_pid", "finished_at")


@dataclass
class BatchSummary:
    n_selected: int
    n_skipped: int  # done by an earlier run
    n_processed: int
    n_ok: int  # in the final table, over the selection
    n_failed: int
    seconds: float
    results_path: Path
    failures: list[tuple[str, str]] = field(default_factory=list)
    n_declined: int = 0  # teacher mode: skipped rows (no face, low confidence)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["results_path"] = str(self.results_path)
        d["failures"] = [list(f) for f in self.failures[:20]]
        return d

    def line(self) -> str:
        ips = self.n_processed / self.seconds if self.seconds > 0 else 0.0
        declined = f"{self.n_declined} declined by the teacher, " if self.n_declined else ""
        text = (
            f"{self.n_selected} inputs: {self.n_ok} ok, {self.n_failed} failed, {declined}"
            f"{self.n_skipped} already done; {self.n_processed} processed in "
            f"{self.seconds:.1f} s ({ips:.1f} img/s); results: {self.results_path}"
        )
        if self.failures:
            first_id, reason = self.failures[0]
            text += f"; first failure: {first_id}: {reason}"
        return text


# ---------------------------------------------------------------- listing and selection


def _fs(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as exc:  # e.g. s3:// without s3fs installed
        raise HairsegError(f"cannot open {uri!r}: {exc}", exit_code=EXIT_USAGE) from None


def _item_id(rel: str) -> str:
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    return _UNSAFE.sub("_", stem.strip("/").replace("/", "__")) or "_"


def list_inputs(src: str, *, storage_options: dict[str, Any] | None = None) -> list[InputItem]:
    """Every file under ``src`` (a folder, recursively; a glob; or one file), sorted.

    Hidden files and folders (``.name``) are left out; anything else is an input, so a
    stray non-image becomes a failed row rather than going unnoticed. Ids are the path
    relative to the folder (or the glob's fixed prefix) without the extension, ``/`` as
    ``__``; two files that would share an id (``a.jpg``, ``a.png``) keep their extension.
    """
    fs, path = _fs(src, storage_options)
    if _MAGIC.search(path):
        root = path[: _MAGIC.search(path).start()].rsplit("/", 1)[0]
        paths = [p for p in fs.glob(path) if fs.isfile(p)]
    elif fs.isdir(path):
        root = path.rstrip("/")
        paths = fs.find(path)
    elif fs.isfile(path):
        root = path.rsplit("/", 1)[0] if "/" in path else ""
        paths = [path]
    else:
        raise HairsegError(f"no such input: {src!r} (a folder, a glob or a file)", exit_code=2)
    rels = []
    for p in sorted(paths):
        rel = p[len(root) :].lstrip("/") if root and p.startswith(root) else p.lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        rels.append((rel, p))
    ids = [_item_id(rel) for rel, _ in rels]
    seen: dict[str, int] = {}
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
    items, used = [], set()
    for (rel, p), base in zip(rels, ids, strict=True):
        item_id = base if seen[base] == 1 else _UNSAFE.sub("_", rel.replace("/", "__"))
        while item_id in used:
            item_id += "_"
        used.add(item_id)
        uri = p if _is_local(fs) else fs.unstrip_protocol(p)
        items.append(InputItem(item_id, uri))
    return items


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0-based, ``0 <= i < n``) → ``(i, n)``; ``None`` → ``(0, 1)``."""
    if text is None or text == "":
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise HairsegError(
            f"--shard {text!r} is not i/n with 0 <= i < n (e.g. 0/4)", exit_code=EXIT_USAGE
        )
    return int(match[1]), int(match[2])


def select(
    items: Sequence[InputItem], shard: tuple[int, int] = (0, 1), limit: int | None = None
) -> list[InputItem]:
    """Shard ``i/n`` takes every n-th item of the sorted listing from i; then ``limit``."""
    index, count = shard
    chosen = sorted(items, key=lambda it: it.id)[index::count]
    if limit is not None:
        if limit < 0:
            raise HairsegError(f"--limit must be >= 0, got {limit}", exit_code=EXIT_USAGE)
        chosen = chosen[:limit]
    return chosen


# ---------------------------------------------------------------- results tables


def _shard_tag(shard: tuple[int, int]) -> str:
    return "" if shard == (0, 1) else f"-{shard[0]}-of-{shard[1]}"


def results_path(dest: str | Path, shard: tuple[int, int] = (0, 1)) -> Path:
    return Path(dest) / f"results{_shard_tag(shard)}.parquet"


def _parts_dir(dest: Path, shard: tuple[int, int]) -> Path:
    return dest / ".batch" / f"shard{_shard_tag(shard) or '-0-of-1'}"


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for column, dtype in RESULT_COLUMNS.items():
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), dtype="object")
        if dtype == "float64":
            df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df[list(RESULT_COLUMNS)].astype(RESULT_COLUMNS)


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _latest(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return _frame([])
    # reindex: a table written before a column existed reads back with it null
    frames = [f.reindex(columns=list(RESULT_COLUMNS)).astype(RESULT_COLUMNS) for f in frames]
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["id", "finished_at"], kind="stable")
    df = df.drop_duplicates("id", keep="last").sort_values("id", kind="stable")
    return df.reset_index(drop=True)


def compact(dest: str | Path, shard: tuple[int, int] = (0, 1)) -> pd.DataFrame:
    """Fold the part files into the shard's table (latest row per id), then drop them.

    The table is replaced atomically before any part is deleted, so a crash at any point
    loses nothing and a part read twice is deduplicated.
    """
    dest = Path(dest)
    table = results_path(dest, shard)
    parts = sorted(_parts_dir(dest, shard).glob("part-*.parquet"))
    frames = [pd.read_parquet(table)] if table.is_file() else []
    frames += [pd.read_parquet(p) for p in parts]
    df = _latest(frames)
    if parts or not table.is_file():
        _write_parquet_atomic(df, table)
    for p in parts:
        p.unlink(missing_ok=True)
    return df


def read_results(dest: str | Path) -> pd.DataFrame:
    """Every shard's table in ``dest`` as one (latest row per id)."""
    dest = Path(dest)
    return _latest([pd.read_parquet(p) for p in sorted(dest.glob("results*.parquet"))])


def _done_ids(df: pd.DataFrame, dest: Path, version: str, as_dataset: bool) -> set[str]:
    same = df[df["model_version"] == version]
    # a declined row is final for the same teacher (it would decline again)
    done = set(same.loc[same["status"] == "skipped", "id"].astype(str))
    ok = same[same["status"] == "ok"]
    for row in ok.itertuples(index=False):
        if not (dest / str(row.mask_path)).is_file():
            continue
        if as_dataset and (pd.isna(row.image_path) or not (dest / str(row.image_path)).is_file()):
            continue
        done.add(str(row.id))
    return done


def write_dataset_manifest(
    dest: str | Path,
    *,
    licence: str = "unknown",
    split: str = "train",
    licences: dict[str, str] | None = None,
) -> Path | None:
    """``manifest.parquet`` over the ok rows of every table in ``dest`` (source=pseudo);
    ``licences`` (id → licence) overrides ``licence`` per image. None when no row is ok."""
    from hairseg.data.manifest import write_manifest

    df = read_results(dest)
    ok = df[df["status"] == "ok"]
    if not len(ok):
        return None
    columns: dict[str, Any] = {
        "id": ok["id"],
        "image_path": ok["image_path"],
        "mask_path": ok["mask_path"],
        "split": split,
        "source": PSEUDO_SOURCE,
        "licence": ok["id"].map(lambda i: (licences or {}).get(str(i), licence)),
        "width": ok["width"].astype("int64"),
        "height": ok["height"].astype("int64"),
        "label_quality": "pseudo",
        "confidence": ok["confidence"],
        "hair_coverage": ok["hair_coverage"],
        "model_version": ok["model_version"],
        "source_uri": ok["uri"],
    }
    if ok["confidence_path"].notna().any():  # the teacher's extras
        columns["confidence_path"] = ok["confidence_path"]
        columns["face_count"] = ok["face_count"].astype("int64")
        columns["pseudo_source_path"] = ok["uri"]
    return write_manifest(pd.DataFrame(columns), dest)


# ---------------------------------------------------------------- the run


_WORKER_TEMP = re.compile(r"^\.(?P<name>.+)\.\d+\.tmp$")  # batch_worker._write_atomic's names


def _remove_stale_temps(dest: Path, parts: Path, todo_ids: set[str]) -> None:
    """Delete what a killed run left half-written: the temp files of the items this run
    redoes (``.<file>.<pid>.tmp`` beside their outputs) and any in this shard's own parts
    folder. Only this shard writes those items and that folder, so a shard running at the
    same time into the same DEST is never touched."""
    for tmp in dest.rglob(".*.tmp"):
        match = _WORKER_TEMP.match(tmp.name)
        own_item = match is not None and Path(match["name"]).stem in todo_ids
        if own_item or tmp.parent == parts:
            tmp.unlink(missing_ok=True)


def run_batch(
    items: Sequence[InputItem],
    dest: str | Path,
    model_path: str | Path | None,
    cfg: BatchConfig | None = None,
    *,
    shard: tuple[int, int] = (0, 1),
    as_dataset: bool = False,
    teacher: Any = None,
    registered_version: str | None = None,
    licence: str = "unknown",
    licences: dict[str, str] | None = None,
    split: str = "train",
    progress: bool = False,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Predict every item of ``items`` not already done in ``dest``; see the module doc.

    ``teacher``: a :class:`~hairseg.data.pseudo_label.TeacherSpec` (its ``model_path``
    replaces ``model_path``, which may then be None): pseudo-label mode, DEST a dataset.
    """
    from hairseg.inference import OnnxSegmenter

    cfg = cfg or BatchConfig()
    started = time.monotonic()
    dest = Path(dest)
    if teacher is not None:
        from hairseg.data.pseudo_label import Teacher

        as_dataset, model_path = True, teacher.model_path
        probe_teacher = Teacher(teacher)
        try:
            probe_teacher.check()  # no face detector: a usage error before any work
        finally:
            probe_teacher.close()
    version = None
    if model_path is not None:
        probe = OnnxSegmenter(model_path, threshold=cfg.threshold, intra_op_threads=1)
        version = model_version(model_path, probe.metadata, registered_version)
        del probe
    if teacher is not None:
        version = teacher.version(version)
    assert version is not None, "run_batch needs model_path or a teacher"
    dest.mkdir(parents=True, exist_ok=True)
    if cfg.tryon_shade:
        from hairseg.tryon import parse_shade

        parse_shade(cfg.tryon_shade)  # a bad shade is a usage error before any work
    previous = compact(dest, shard)
    done = _done_ids(previous, dest, version, as_dataset)
    todo = [it for it in items if it.id not in done]
    parts = _parts_dir(dest, shard)
    _remove_stale_temps(dest, parts, {it.id for it in todo})
    buffer: list[dict[str, Any]] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            name = f"part-{time.time_ns():020d}-{os.getpid()}.parquet"
            _write_parquet_atomic(_frame(buffer), parts / name)
            buffer.clear()
        last_flush = time.monotonic()

    def collect(row: dict[str, Any]) -> None:
        buffer.append(row)
        bar.update(1)
        if on_row is not None:
            on_row(row)
        if len(buffer) >= cfg.flush_every or time.monotonic() - last_flush >= cfg.flush_seconds:
            flush()

    from tqdm import tqdm

    init_args = (
        None if model_path is None else str(model_path), cfg, str(dest), as_dataset, version,
        teacher,
    )  # fmt: skip
    workers = max(1, min(cfg.workers, len(todo)))
    with tqdm(total=len(todo), unit="img", disable=not progress, mininterval=0.5) as bar:
        try:
            if workers == 1:
                init_worker(*init_args)
                for item in todo:
                    collect(process_item(item))
            else:
                _run_pool(todo, workers, init_args, collect)
        finally:  # Ctrl-C or a dead worker: keep every row already collected
            flush()
    final = compact(dest, shard)
    if as_dataset:
        write_dataset_manifest(dest, licence=licence, split=split, licences=licences)
    chosen = final[final["id"].isin({it.id for it in items})]
    failed = chosen[chosen["status"] == "failed"]
    return BatchSummary(
        n_selected=len(items),
        n_skipped=len(items) - len(todo),
        n_processed=len(todo),
        n_ok=int((chosen["status"] == "ok").sum()),
        n_failed=len(failed),
        seconds=time.monotonic() - started,
        results_path=results_path(dest, shard),
        failures=[(str(r.id), str(r.error)) for r in failed.itertuples(index=False)],
        n_declined=int((chosen["status"] == "skipped").sum()),
    )


def _run_pool(
    todo: Sequence[InputItem],
    workers: int,
    init_args: tuple[Any, ...],
    collect: Callable[[dict[str, Any]], None],
) -> None:
    """Feed a process pool with a bounded window of items (memory stays flat)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no forked ORT/fsspec threads
    window = workers * 4
    pending: set[Future] = set()
    queue = iter(todo)
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=init_worker, initargs=init_args
    ) as pool:
        for item in queue:
            pending.add(pool.submit(process_item, item))
            if len(pending) >= window:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    collect(fut.result())
        for fut in as_completed(pending):
            collect(fut.result())


def summarise(df: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """Counts, failure reasons and a hair-coverage histogram of a results table."""
    ok = df[df["status"] == "ok"]
    coverage = ok["hair_coverage"].dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(coverage, bins=bins, range=(0.0, 1.0))
    failed = df[df["status"] == "failed"]
    reasons = failed["error"].fillna("").map(_reason_kind).value_counts().to_dict()
    return {
        "n": len(df),
        "n_ok": len(ok),
        "n_failed": len(failed),
        "n_declined": int((df["status"] == "skipped").sum()),
        "failure_kinds": {str(k): int(v) for k, v in sorted(reasons.items())},
        "coverage_mean": float(coverage.mean()) if len(coverage) else None,
        "confidence_mean": float(ok["confidence"].mean()) if len(ok) else None,
        "coverage_histogram": {
            f"{edges[i]:.1f}-{edges[i + 1]:.1f}": int(c) for i, c in enumerate(counts)
        },
        "model_versions": sorted(str(v) for v in df["model_version"].dropna().unique()),
        "ms_per_image_p50": float(ok["total_ms"].median()) if len(ok) else None,
    }


def _reason_kind(error: str) -> str:
    text = error.lower()
    for key, kind in (
        ("empty", "empty_file"),
        ("pixels", "too_many_pixels"),
        ("corrupt", "corrupt"),
        ("not a decodable", "not_an_image"),
        ("read failed", "read_error"),
    ):
        if key in text:
            return kind
    return "other"


def render_summary(stats: dict[str, Any], df: pd.DataFrame, max_failures: int = 20) -> str:
    """The run summary as Markdown (the KFP UI renders it): counts, failures, histogram."""
    lines = [
        "# hairseg batch prediction",
        "",
        "| inputs | ok | failed | mean hair coverage | mean confidence | p50 ms/image |",
        "|---:|---:|---:|---:|---:|---:|",
        "| {n} | {n_ok} | {n_failed} | {cov} | {conf} | {ms} |".format(
            cov=_fmt(stats["coverage_mean"]),
            conf=_fmt(stats["confidence_mean"]),
            ms=_fmt(stats["ms_per_image_p50"], 1),
            **stats,
        ),
        "",
        f"Model: {', '.join(stats['model_versions']) or 'n/a'}",
        "",
        "## Hair coverage",
        "",
        "| coverage | images | |",
        "|---|---:|---|",
    ]
    top = max(stats["coverage_histogram"].values(), default=0) or 1
    for band, count in stats["coverage_histogram"].items():
        lines.append(f"| {band} | {count} | {'█' * round(20 * count / top)} |")
    failed = df[df["status"] == "failed"]
    if len(failed):
        kinds = ", ".join(f"{k}: {v}" for k, v in stats["failure_kinds"].items())
        lines += ["", f"## Failures ({kinds})", "", "| id | reason |", "|---|---|"]
        for row in failed.head(max_failures).itertuples(index=False):
            reason = str(row.error).replace("|", "/")
            lines.append(f"| {row.id} | {reason} |")
        if len(failed) > max_failures:
            lines.append(f"| … | {len(failed) - max_failures} more in results.parquet |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
