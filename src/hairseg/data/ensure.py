"""Make ``data/`` hold exactly the dataset that ``data.dvc`` names, offline if need be.

``hairseg data ensure`` (the ``data`` DVC stage) decides, in order:

1. ``data/`` already matches the hash in ``data.dvc`` → nothing to do (``present``);
2. a DVC remote is configured → ``dvc pull data.dvc``; used if the result matches
   (``pulled``); an unreachable remote is one notice line, then step 3;
3. the demo generator with the ``data:`` params → generated in a temp folder, hashed, and
   swapped in only if the hash equals ``data.dvc`` (``generated``); otherwise it fails
   with one line naming the expected and the actual hash, and ``data/`` is untouched.

The hash is DVC's own directory hash (md5 of the sorted ``{md5, relpath}`` listing,
suffixed ``.dir``), computed here without taking DVC's repository lock, because this runs
inside ``dvc repro``.

The outcome is written to a provenance JSON (no timestamps: byte-stable between runs),
which the ``validate`` stage depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import yaml

from hairseg.data.generate import (
    DataParams,
    generate_dataset,
    read_generator_record,
    replace_dir,
)
from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = [
    "DvcRecord",
    "EnsureResult",
    "dvc_dir_hash",
    "ensure_data",
    "read_dvc_record",
    "write_provenance",
]

Method = Literal["present", "pulled", "generated"]


@dataclass(frozen=True)
class DvcRecord:
    """What ``data.dvc`` says the dataset is."""

    path: str
    md5: str
    nfiles: int | None
    size: int | None


@dataclass(frozen=True)
class EnsureResult:
    method: Method
    data_md5: str
    nfiles: int
    generator_params: dict[str, object] | None = None  # None: not the demo generator's data
    notices: tuple[str, ...] = ()

    def provenance(self, dvc_file: str) -> dict[str, object]:
        """The provenance record: how the data was obtained and its verified hash."""
        return {
            "method": self.method,
            "dvc_file": dvc_file,
            "data_md5": self.data_md5,
            "nfiles": self.nfiles,
            "generator_params": self.generator_params,
        }


def read_dvc_record(dvc_file: str | Path) -> DvcRecord:
    """Read the single ``outs`` entry of a ``dvc add`` file."""
    dvc_file = Path(dvc_file)
    if not dvc_file.is_file():
        raise HairsegError(
            f"{dvc_file} not found; create it with `hairseg data generate data && dvc add data`",
            exit_code=EXIT_USAGE,
        )
    try:
        doc = yaml.safe_load(dvc_file.read_text()) or {}
        (out,) = doc["outs"]
        return DvcRecord(
            path=str(out["path"]),
            md5=str(out["md5"]),
            nfiles=out.get("nfiles"),
            size=out.get("size"),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        raise HairsegError(
            f"{dvc_file} is not a `dvc add` file with exactly one output (outs: [{{md5, path}}])"
        ) from None


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dvc_dir_hash(folder: str | Path) -> tuple[str, int]:
    """DVC 3's md5 hash of a directory (``<md5>.dir``) and its file count.

    Same algorithm as ``dvc_data.hashfile.tree.Tree.digest``: the md5 of
    ``json.dumps(sorted([{"md5": <file md5>, "relpath": <posix path>}]), sort_keys=True)``.
    """
    folder = Path(folder)
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            entries.append({"md5": _md5_file(path), "relpath": path.relative_to(folder).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    blob = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(blob, usedforsecurity=False).hexdigest() + ".dir", len(entries)


def _default_remote(root: Path) -> str | None:
    from dvc.config import Config

    try:
        config = Config(dvc_dir=root / ".dvc")
    except Exception:  # an unreadable DVC config means "no usable remote"
        return None
    return config.get("core", {}).get("remote")


def _dvc(root: Path, *args: str, timeout: float = 3600) -> str | None:
    """Run a DVC command in ``root``; None on success, else a one-line reason."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"dvc {args[0]} exited {proc.returncode}"
    return None


def _check_generator_params(data_dir: Path, params: DataParams) -> None:
    record = read_generator_record(data_dir)
    if record is None or record == asdict(params):
        return
    differing = ", ".join(
        f"{k}: data has {record.get(k)!r}, params.yaml has {v!r}"
        for k, v in asdict(params).items()
        if record.get(k) != v
    )
    raise HairsegError(
        f"{data_dir} was generated with other data params ({differing}); revert params.yaml "
        f"or regenerate and record it: `hairseg data generate {data_dir} --overwrite && "
        f"dvc add {data_dir}`"
    )


def ensure_data(
    root: str | Path,
    params: DataParams,
    *,
    dvc_file: str | Path = "data.dvc",
    try_remote: bool = True,
    force: bool = False,
    commit_to_cache: bool = True,
    progress: bool = False,
    notice: Callable[[str], None] = lambda _msg: None,
) -> EnsureResult:
    """Bring ``<root>/<path in data.dvc>`` to the hash recorded in ``data.dvc``.

    ``force`` replaces a ``data/`` that exists but does not match (otherwise that is an
    error, so local edits are never overwritten silently).
    """
    root = Path(root)
    dvc_path = root / dvc_file
    record = read_dvc_record(dvc_path)
    data_dir = root / Path(dvc_file).parent / record.path

    if data_dir.is_dir():
        actual, nfiles = dvc_dir_hash(data_dir)
        if actual == record.md5:
            _check_generator_params(data_dir, params)
            return EnsureResult("present", actual, nfiles, read_generator_record(data_dir))
        if not force:
            raise HairsegError(
                f"{data_dir} does not match {dvc_file} (expected {record.md5}, found {actual}); "
                f"record a deliberate change with `dvc add {record.path}`, or restore the "
                f"committed data with `hairseg data ensure --force`"
            )

    notices: list[str] = []
    if try_remote and (remote := _default_remote(root)):
        reason = _dvc(root, "pull", str(dvc_file))
        if reason is None and data_dir.is_dir():
            actual, nfiles = dvc_dir_hash(data_dir)
            if actual == record.md5:
                return EnsureResult("pulled", actual, nfiles, read_generator_record(data_dir))
            reason = f"pulled data hashes to {actual}, not {record.md5}"
        notices.append(f"dvc remote '{remote}' unusable ({reason}); regenerating from params")
        notice(notices[-1])

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.ensure-", dir=data_dir.parent))
    try:
        built = generate_dataset(staging / "data", params, progress=progress).path
        actual, nfiles = dvc_dir_hash(built)
        if actual != record.md5:
            raise HairsegError(
                f"regenerated data does not match {dvc_file}: expected {record.md5}, got {actual} "
                f"(params data: {asdict(params)}); fetch the data from the DVC remote "
                f"(`dvc pull {dvc_file}`) or record new data with `dvc add {record.path}`"
            )
        replace_dir(built, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # Put the regenerated files into .dvc/cache, as a `dvc pull` would have: `dvc status` is
    # then clean and `dvc push` can upload them. data.dvc is unchanged (same hash).
    if (
        commit_to_cache
        and (root / ".dvc").is_dir()
        and (reason := _dvc(root, "commit", "--force", "--quiet", str(dvc_file)))
    ):
        notices.append(f"data regenerated but not committed to the DVC cache ({reason})")
        notice(notices[-1])
    return EnsureResult("generated", actual, nfiles, asdict(params), tuple(notices))


def write_provenance(payload: dict[str, object], path: str | Path) -> Path:
    """Write the provenance JSON atomically and byte-stably (sorted keys, no timestamps).

    When the file already records the same ``data_md5``, its ``method`` is kept: the data
    was obtained (e.g. ``generated``) once and is merely ``present`` on later runs, and
    rewriting that would make every downstream stage run again.
    """
    path = Path(path)
    payload = dict(payload)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if old.get("data_md5") == payload.get("data_md5") and "method" in old:
            payload["method"] = old["method"]
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
