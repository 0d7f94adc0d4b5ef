"""``hairseg monitor``: the drift check (exit code 3 on drift) and simulated traffic."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from hairseg.cli.options import params_option, path_option
from hairseg.config import load_params, section
from hairseg.monitoring.drift import EXIT_DRIFT, MonitorConfig, load_current, load_reference

# load_current/load_reference are re-exported for callers that imported them from here.
__all__ = ["load_current", "load_reference", "monitor"]

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def monitor() -> None:
    """Drift monitoring: training statistics vs inference statistics (Evidently)."""


@monitor.command("drift")
@path_option(
    "--reference",
    "reference",
    "artifacts/image_stats.parquet",
    help="Training image statistics (parquet).",
)
@path_option(
    "--current",
    "current",
    ".hairseg/inference_log",
    help="Inference log folder (or one parquet file) with per-request statistics.",
)
@path_option(
    "--out", "out", "reports/drift", help="Folder for drift_report.html and drift_report.json."
)
@path_option("--metrics", "metrics_out", "metrics/drift.json", help="Compact decision JSON.")
@params_option(dest="params_file")
def drift_cmd(
    reference: Path, current: Path, out: Path, metrics_out: Path, params_file: Path
) -> None:
    """Compare inference statistics with training statistics.

    Exit codes: 0 no drift, 3 drift detected (trigger retraining), 2 bad input (missing or
    empty log, missing columns, fewer than monitor.min_rows rows), 1 other failure.
    """
    from hairseg.stages.monitor import drift_stage

    cfg = section(load_params(params_file), "monitor", MonitorConfig)
    result = drift_stage(reference, current, cfg, out_dir=out, metrics_out=metrics_out)
    verdict = "DRIFT" if result.drifted else "no drift"
    click.echo(
        f"{verdict}: {len(result.drifted_columns)}/{len(result.columns)} columns drifted "
        f"(share {result.share:.2f}, threshold {result.drift_share_threshold:.2f})"
        + (f": {', '.join(result.drifted_columns)}" if result.drifted_columns else "")
    )
    click.echo(f"report: {result.report_html_path}")
    if result.drifted:
        sys.exit(EXIT_DRIFT)


@monitor.command("simulate")
@path_option(
    "--dataset", "dataset", "data", help="Dataset folder (manifest.parquet, images/, masks/)."
)
@click.option(
    "--shift",
    type=click.Choice(["none", "dark", "blur", "colour"]),
    default="none",
    show_default=True,
    help="Transform applied to every image before its statistics are taken.",
)
@click.option("--n", "n", type=int, default=None, help="Requests [default: each image once].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default="test", show_default=True, help="Images from this split.")
@path_option(
    "--out",
    "out",
    ".hairseg/inference_log",
    help="Inference log folder (parts are added, existing ones kept).",
)
def simulate_cmd(
    dataset: Path, shift: str, n: int | None, seed: int, split: str, out: Path
) -> None:
    """Write an inference log of simulated requests (dataset images with a shift)."""
    from hairseg.stages.monitor import simulate_stage

    records = simulate_stage(dataset, out, shift=shift, n=n, seed=seed, split=split)
    click.echo(f"wrote {len(records)} simulated '{shift}' requests to {out}")
