"""Reading and writing the small JSON files stages exchange (metrics, run info, decisions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.jsonio import write_json_atomic

__all__ = ["flatten", "read_json", "write_json"]


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON atomically (paths and numpy scalars become plain values)."""
    write_json_atomic(path, payload, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path, hint: str) -> dict[str, Any]:
    """The JSON object in ``path``; a missing file is a usage error naming ``hint``."""
    if not path.is_file():
        raise HairsegError(f"{path} not found: {hint}", exit_code=EXIT_USAGE)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HairsegError(f"{path} is not valid JSON: {exc}") from None


def flatten(prefix: str, mapping: dict[str, Any]) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out
