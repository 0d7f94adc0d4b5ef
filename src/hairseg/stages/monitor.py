"""The monitoring stages: the drift check and simulated inference traffic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hairseg.stages.files import write_json

if TYPE_CHECKING:
    from hairseg.monitoring.drift import DriftResult, MonitorConfig

__all__ = ["drift_stage", "simulate_stage"]


def drift_stage(
    reference: Path,
    current: Path,
    cfg: MonitorConfig,
    *,
    out_dir: Path,
    metrics_out: Path | None = None,
) -> DriftResult:
    """Training image statistics (``reference``, parquet) vs the inference log
    (``current``, a folder or one parquet file): the Evidently report in ``out_dir`` and,
    when ``metrics_out`` is given, the compact decision JSON there."""
    from hairseg.monitoring.drift import check_drift, load_current, load_reference

    result = check_drift(
        load_reference(reference, cfg), load_current(current), cfg, out_dir=out_dir
    )
    if metrics_out is not None:
        write_json(metrics_out, result.to_metrics())
    return result


def simulate_stage(
    dataset: Path,
    out: Path,
    *,
    shift: str = "none",
    n: int | None = None,
    seed: int = 0,
    split: str = "test",
) -> list[Any]:
    """Append an inference log of simulated requests (``dataset`` images with ``shift``)
    to ``out``; returns the records written."""
    from hairseg.monitoring.inference_log import InferenceLogWriter
    from hairseg.monitoring.simulate import simulate_inference_records

    records = simulate_inference_records(dataset, shift=shift, n=n, seed=seed, split=split)
    with InferenceLogWriter(out, flush_every=len(records) + 1) as writer:
        for record in records:
            writer.append(record)
    return records
