"""Writing JSON files that readers (DVC, schedulers, a resumed rollout) can trust.

One implementation for every metrics file, report and state file the project writes: a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_json_atomic"]


def write_json_atomic(
    path: str | os.PathLike[str],
    payload: Any,
    *,
    default: Callable[[Any], Any] | None = str,
) -> Path:
    """Write ``payload`` as indented, key-sorted JSON (trailing newline) to ``path``.

    The bytes go to a temp file in the same folder, are flushed to disk, then renamed over
    ``path``. ``default`` serialises values JSON does not know (``str`` unless given;
    ``None`` makes them an error).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, sort_keys=True, default=default) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
