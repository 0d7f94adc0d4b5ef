"""Where the ONNX file comes from: a local file or directory (``/mnt/models`` after
KServe's storage initializer), or the MLflow registry (``models:/hairseg@champion``).

Resolution is the registry's own (:func:`hairseg.registry.fetch_onnx`); this module only
turns remote storage URIs into a clear error, since in a cluster KServe's storage
initializer downloads ``storageUri`` to ``/mnt/models`` before the predictor starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["DEFAULT_MODEL_URI", "NO_CHAMPION", "resolve_model"]

DEFAULT_MODEL_URI = "models:/hairseg@champion"
NO_CHAMPION = "no champion registered yet; run `make run` or pass --model PATH"
_REMOTE = ("gs://", "s3://", "http://", "https://", "pvc://", "hdfs://", "oci://", "hf://")


def resolve_model(uri: str, *, cache_dir: Path, project_root: Path | None = None) -> Path:
    """A local ``.onnx`` path for ``uri``.

    ``models:/`` URIs are read from ``MLFLOW_TRACKING_URI`` when set, else from the
    project's embedded store (:func:`hairseg.registry.default_tracking_uri`).
    """
    if uri.startswith(_REMOTE):
        raise HairsegError(
            f"{uri!r}: remote storage is fetched by KServe's storage initializer into "
            "/mnt/models (set storageUri); pass --model /mnt/models or a local path",
            exit_code=EXIT_USAGE,
        )
    from hairseg import registry

    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or registry.default_tracking_uri(
        project_root or Path.cwd()
    )
    try:
        return registry.fetch_onnx(uri, Path(cache_dir), tracking_uri)
    except HairsegError as exc:
        if uri == DEFAULT_MODEL_URI:
            raise HairsegError(f"{NO_CHAMPION} ({exc})", exit_code=EXIT_USAGE) from None
        raise
    except Exception as exc:  # MLflow's own errors: one line, not a traceback
        if uri == DEFAULT_MODEL_URI:
            raise HairsegError(NO_CHAMPION, exit_code=EXIT_USAGE) from None
        raise HairsegError(f"cannot fetch {uri}: {type(exc).__name__}: {exc}") from None
