"""Compile the pipelines to versioned YAML (deterministic: same source, same bytes)."""

from __future__ import annotations

import ast
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hairseg_pipelines.versioning import (
    BATCH_PIPELINE,
    DRIFT_PIPELINE,
    TRAINING_PIPELINE,
    compiled_path,
)

__all__ = ["PIPELINES", "build", "compile_pipeline", "compile_to_text", "load_compiled"]

PIPELINES = (TRAINING_PIPELINE, DRIFT_PIPELINE, BATCH_PIPELINE)


def build(name: str, params: Mapping[str, Any], image: str) -> Any:
    """The ``GraphComponent`` of pipeline ``name`` with defaults from ``params``."""
    from hairseg.errors import EXIT_USAGE, HairsegError

    if name == TRAINING_PIPELINE:
        from hairseg_pipelines.training import build_training_pipeline

        return build_training_pipeline(params, image=image)
    if name == DRIFT_PIPELINE:
        from hairseg_pipelines.drift import build_drift_pipeline

        return build_drift_pipeline(params, image=image)
    if name == BATCH_PIPELINE:
        from hairseg_pipelines.batch import build_batch_pipeline

        return build_batch_pipeline(params, image=image)
    raise HairsegError(
        f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}", exit_code=EXIT_USAGE
    )


def compile_pipeline(pipeline: Any, package_path: str | Path) -> Path:
    """``kfp.compiler.Compiler().compile`` to ``package_path`` (parents created), with the
    header comment made deterministic (see :func:`_stable_header`)."""
    from kfp import compiler

    package_path = Path(package_path)
    package_path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(package_path))
    package_path.write_text(_stable_header(package_path.read_text()))
    return package_path


_HEADER_DEFAULT = re.compile(r"^(#\s+\S+: \w+ \[Default: )(.*)(\])$")


def _stable_header(text: str) -> str:
    """Sort the keys of ``dict`` defaults in the compiler's ``# Inputs:`` comment.

    The YAML body is deterministic, but the comment renders a ``dict`` parameter's default
    from a protobuf ``Struct`` whose key order varies between processes; the same source
    must always give the same bytes (the committed YAML is checked against the source).
    """

    def sort_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sort_keys(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [sort_keys(v) for v in value]
        return value

    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break  # the header is the leading comment block
        match = _HEADER_DEFAULT.match(line)
        if match and match.group(2).startswith("{"):
            try:
                value = ast.literal_eval(match.group(2))
            except (ValueError, SyntaxError):
                continue
            lines[i] = f"{match.group(1)}{sort_keys(value)!r}{match.group(3)}"
    return "\n".join(lines)


def compile_to_text(name: str, params: Mapping[str, Any], image: str) -> str:
    """The compiled YAML of pipeline ``name`` as text."""
    with tempfile.TemporaryDirectory() as tmp:
        return compile_pipeline(build(name, params, image), Path(tmp) / f"{name}.yaml").read_text()


def compile_all(params: Mapping[str, Any], image: str, root: str | Path = ".") -> list[Path]:
    """Write every pipeline to ``pipelines/compiled/<name>-v<version>.yaml`` under ``root``."""
    written = []
    for name in PIPELINES:
        path = compiled_path(name, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(compile_to_text(name, params, image))
        written.append(path)
    return written


def load_compiled(text: str) -> tuple[Any, dict[str, Any] | None]:
    """Parse compiled YAML strictly: (``PipelineSpec`` proto, platform spec or ``None``).

    The compiler writes the pipeline spec first and, when a task has Kubernetes settings
    (node selector, tolerations), a second YAML document holding the ``PlatformSpec``.
    Unknown fields are errors in both.
    """
    import yaml
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if not docs or len(docs) > 2:
        raise ValueError(f"expected 1 or 2 YAML documents, got {len(docs)}")
    spec = json_format.ParseDict(
        docs[0], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False
    )
    platform = None
    if len(docs) == 2:
        from kfp.kubernetes import kubernetes_executor_config_pb2

        json_format.ParseDict(
            docs[1], pipeline_spec_pb2.PlatformSpec(), ignore_unknown_fields=False
        )
        # PlatformSpec keeps each executor's settings as a free-form Struct: check those
        # against the Kubernetes executor config message as strictly.
        executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for config in executors.values():
            json_format.ParseDict(
                config,
                kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
                ignore_unknown_fields=False,
            )
        platform = docs[1]
    return spec, platform
