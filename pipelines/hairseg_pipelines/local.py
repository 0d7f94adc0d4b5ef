"""Run a pipeline without a cluster: ``kfp.local`` with the SubprocessRunner.

Each component runs as a subprocess of the current interpreter (``use_venv=False``; the
project venv already holds everything the image holds), so the container image is not
used. kfp 2.17's local orchestrator executes ``dsl.If`` groups (its enhanced DAG
orchestrator), applies task retries and, with ``cache=True``, reuses the outputs of
cache-enabled steps (data, validate, features, quantize) from earlier runs under the same
pipeline root.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hairseg.errors import HairsegError

__all__ = ["TINY", "LocalRun", "deep_merge", "local_arguments", "run_local"]

log = logging.getLogger(__name__)

# Small enough for a laptop or CI (a few minutes on 2 cores), big enough to exercise every step.
# The gate is opened wide: a one-epoch model on 12 images is not meant to be good, and the
# run must still exercise register (and rollout) behind the gate.
TINY: dict[str, dict[str, Any]] = {
    "data_params": {"n_train": 12, "n_val": 4, "n_test": 4, "image_size": 64},
    "model_params": {"input_size": 64},
    "train_params": {
        "epochs": 1,
        "batch_size": 4,
        "crop_size": 32,
        "patience": 1,
        "threads": 1,
        "pseudo": {"data": ""},
    },
    "quantize_params": {"calibration_images": 4},
    "evaluate_params": {"latency_batch_sizes": [1], "latency_repeats": 2, "threads": 1},
    "gate_params": {"iou_tolerance": 1.0, "min_iou": 0.0, "latency_budget_ms": 10000.0},
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, recursively for nested mappings."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def local_arguments(
    defaults: Mapping[str, Any],
    root: str | Path,
    *,
    tiny: bool = False,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Arguments for a local run: the pipeline's defaults, pointed at this checkout's
    embedded services (SQLite MLflow, local Feast repo) and commit, ``TINY`` if asked."""
    from hairseg.registry import default_tracking_uri
    from hairseg_pipelines.versioning import git_commit

    root = Path(root).resolve()
    args = copy.deepcopy(dict(defaults))
    local = {
        "mlflow_tracking_uri": tracking_uri or default_tracking_uri(root),
        "feast_repo": str(root / "feature_repo"),
        "feast_config": "feature_store.yaml",
        "rollout_backend": "local",
        "git_commit": git_commit(root)[0] or "",
    }
    args.update({k: v for k, v in local.items() if k in args})
    if tiny:
        args.update({k: deep_merge(args[k], v) for k, v in TINY.items() if k in args})
    return args


@dataclass
class LocalRun:
    """Where a local run left its outputs, and what each task produced."""

    pipeline: str
    run_dir: Path
    seconds: float
    tasks: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "run_dir": str(self.run_dir),
            "seconds": round(self.seconds, 1),
            "outputs": {k: v for k, v in self.outputs.items() if _plain_value(v)},
            "tasks": self.tasks,
        }


def _plain_value(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def run_local(
    pipeline: Any,
    arguments: Mapping[str, Any],
    pipeline_root: str | Path,
    *,
    cache: bool = False,
) -> LocalRun:
    """Run ``pipeline`` (a ``GraphComponent``) with ``arguments`` under ``pipeline_root``."""
    from kfp import local

    pipeline_root = Path(pipeline_root).resolve()
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = {p for p in pipeline_root.iterdir() if p.is_dir()}
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
        enable_caching=cache,
    )
    started = time.monotonic()
    try:
        task = pipeline(**arguments)
    except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE ..."
        raise HairsegError(f"local pipeline run failed: {_plain(str(exc))}") from None
    seconds = time.monotonic() - started
    new = sorted(
        p for p in pipeline_root.iterdir() if p.is_dir() and p not in before and p.name[0] != "."
    )
    if not new:
        raise HairsegError(f"kfp.local left no run folder under {pipeline_root}")
    run_dir = new[-1]
    tasks = {
        task.name: sorted(str(p.relative_to(task)) for p in task.iterdir())
        for task in sorted(run_dir.iterdir())
        if task.is_dir()
    }
    outputs = dict(getattr(task, "outputs", None) or {})
    run = LocalRun(
        pipeline=pipeline.name, run_dir=run_dir, seconds=seconds, tasks=tasks, outputs=outputs
    )
    (run_dir / "local_run.json").write_text(json.dumps(run.as_dict(), indent=2) + "\n")
    return run


def _plain(text: str) -> str:
    """Drop the ANSI colours kfp.local puts in its messages."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
