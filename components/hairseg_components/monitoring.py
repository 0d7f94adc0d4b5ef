"""Monitoring component: the drift check (``hairseg monitor drift``)."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from hairseg_components.image import component

__all__ = ["drift_check"]


@component
def drift_check(
    reference_stats: Input[Dataset],
    current_log: Input[Dataset],
    monitor_params: dict,
    drift_report: Output[HTML],
    drift_metrics: Output[Metrics],
    drift_json: Output[Dataset],
) -> bool:
    """Training image statistics (reference, parquet) vs the inference log (current, a
    folder or parquet): ``hairseg.monitoring.drift.check_drift``. Returns whether the data
    drifted; the Evidently report is the step's HTML visualisation."""
    import shutil
    import tempfile
    from pathlib import Path

    from hairseg.stages.monitor import drift_stage
    from hairseg_components.runtime import log_metrics, stage_configs, write_json

    (cfg,) = stage_configs(monitor=monitor_params)
    with tempfile.TemporaryDirectory() as out:
        result = drift_stage(Path(reference_stats.path), Path(current_log.path), cfg, out_dir=out)
        shutil.copyfile(result.report_html_path, drift_report.path)
    summary = result.to_metrics()
    summary.pop("report_html", None)
    write_json(drift_json.path, summary)
    log_metrics(
        drift_metrics,
        {"drifted": result.drifted, "drift_share": result.share,
         "drifted_columns": len(result.drifted_columns),
         "n_reference": result.n_reference, "n_current": result.n_current},
    )  # fmt: skip
    drift_report.metadata["drifted_columns"] = ",".join(result.drifted_columns)
    return bool(result.drifted)
