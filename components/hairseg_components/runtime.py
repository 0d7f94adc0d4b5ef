"""Glue shared by the component bodies (runs inside the component's container).

KFP executes each component's function source on its own, so anything two components
share lives here, in the installed package, and is imported inside the function body.
This is boundary code only: KFP parameters into the typed configs a stage takes
(:func:`stage_config`, the one place protobuf's float-widened ints are repaired), a scratch
working folder, recording metadata. No stage logic lives here (it is in
:mod:`hairseg.stages`), and nothing here runs the CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "card_html",
    "ints_back",
    "log_metrics",
    "read_json",
    "stage_config",
    "stage_configs",
    "workdir",
    "write_json",
]

T = TypeVar("T")


def ints_back(value: Any) -> Any:
    """Undo protobuf ``Struct``'s int → float widening (``1`` arrives as ``1.0``).

    KFP passes ``dict`` parameters as ``google.protobuf.Struct``, which has only doubles.
    The core's strict config reader rejects ``1.0`` for an ``int`` field but accepts ``1``
    for a ``float`` one, so turning every integral float back into an int is lossless.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: ints_back(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [ints_back(v) for v in value]
    return value


def stage_config(name: str, raw: Mapping[str, Any] | None, cls: type[T]) -> T:
    """Build the core's typed config for ``params.yaml`` section ``name`` from a KFP dict."""
    from hairseg.config import section

    return section({name: ints_back(dict(raw or {}))}, name, cls)


def stage_configs(**sections: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """The typed configs of the named ``params.yaml`` sections from their KFP dicts, in
    keyword order: ``model_cfg, train_cfg = stage_configs(model=model_params, train=...)``
    (types from :data:`hairseg.stages.configs.SECTION_TYPES`)."""
    from hairseg.stages.configs import config_type

    return tuple(stage_config(name, raw, config_type(name)) for name, raw in sections.items())


def log_metrics(metrics_artifact: Any, values: Mapping[str, Any], prefix: str = "") -> None:
    """``log_metric`` every finite number in ``values`` (nested keys joined with ``.``)."""
    import math

    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            log_metrics(metrics_artifact, value, prefix=f"{name}.")
        elif isinstance(value, bool) or (
            isinstance(value, int | float) and math.isfinite(float(value))
        ):
            metrics_artifact.log_metric(name, float(value))


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented JSON (parents created), atomically."""
    from hairseg.jsonio import write_json_atomic

    return write_json_atomic(path, value)


def card_html(card_path: str | os.PathLike[str]) -> str:
    """The Markdown model card as one HTML page with the gallery PNGs it links inlined
    (the KFP UI shows a single HTML file)."""
    import base64
    import html
    import re

    card_path = Path(card_path)

    def inline(match: re.Match[str]) -> str:
        target = card_path.parent / match.group(2)
        if not target.is_file():
            return match.group(0)
        data = base64.b64encode(target.read_bytes()).decode()
        return f'<img alt="{html.escape(match.group(1))}" src="data:image/png;base64,{data}">'

    card = html.escape(card_path.read_text(), quote=False)
    body = re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, card)
    return (
        "<!doctype html><meta charset='utf-8'><title>hairseg model card</title>"
        f"<pre style='white-space:pre-wrap;font-family:sans-serif'>{body}</pre>"
    )


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh scratch folder as the working directory (the image's WORKDIR is read-only
    for the step's user, and commands keep caches relative to it)."""
    import tempfile

    previous = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="hairseg-step-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(previous)
