"""``hairseg features``: the Feast feature repo from the command line (DVC stages call it)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import click
import pandas as pd

from hairseg.cli.options import params_option, path_option
from hairseg.config import load_params, section
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.features.store import FeaturesConfig

__all__ = ["features"]

PARAMS = params_option(help="params.yaml with a 'features' section.", dest="params_file")
REPO = path_option(
    "--repo", "repo", None, help="Feast repo folder [default: params features.repo]."
)
CONFIG = path_option(
    "--config",
    "config_file",
    None,
    help="Feast config file [default: REPO/feature_store.yaml], e.g. feature_store.cluster.yaml.",
)
IMAGE_STATS = path_option(
    "--image-stats",
    "image_stats",
    "artifacts/image_stats.parquet",
    help="Image statistics; its (image_id, event_timestamp) rows drive the point-in-time read.",
)


def _cfg(params_file: Path) -> FeaturesConfig:
    return section(load_params(params_file), "features", FeaturesConfig)


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise HairsegError(
            f"--{name} {value!r} is not an ISO date/time (e.g. 2026-11-22T00:00:00Z)",
            exit_code=EXIT_USAGE,
        ) from None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def features() -> None:
    """Feast feature repo: demo customers, apply, materialize, point-in-time slices."""
    # Feast logs every registry refresh at INFO; keep it for --log-level debug.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("feast").setLevel(logging.WARNING)


@features.command("demo-customers")
@PARAMS
@path_option("--out", "out", None, help="Output parquet [default: REPO/data/customers.parquet].")
@click.option("--n", "n", type=int, default=None, help="Number of customers [params].")
@click.option("--seed", type=int, default=None, help="Seed [params features.seed].")
def demo_customers_cmd(
    params_file: Path, out: Path | None, n: int | None, seed: int | None
) -> None:
    """Write the seeded demo customer table behind customer_profile_v1."""
    from hairseg.stages.features import demo_customers_stage

    rows, out = demo_customers_stage(_cfg(params_file), out, n, seed)
    click.echo(f"wrote {rows} customers to {out}")


@features.command("apply")
@PARAMS
@REPO
@CONFIG
def apply_cmd(params_file: Path, repo: Path | None, config_file: Path | None) -> None:
    """Run `feast apply`: register entities, views and services."""
    from hairseg.features.store import apply_repo

    summary = apply_repo(repo or _cfg(params_file).repo, config_file)
    click.echo(json.dumps(summary, indent=2))


@features.command("materialize")
@PARAMS
@REPO
@CONFIG
@click.option("--start", default=None, help="Start (ISO, UTC) [default: 2000-01-01].")
@click.option("--end", default=None, help="End (ISO, UTC) [default: now].")
@click.option("--view", "views", multiple=True, help="Only this feature view (repeatable).")
def materialize_cmd(
    params_file: Path,
    repo: Path | None,
    config_file: Path | None,
    start: str | None,
    end: str | None,
    views: tuple[str, ...],
) -> None:
    """Load offline features into the online store and count what the store answers."""
    from hairseg.features.store import materialize

    summary = materialize(
        repo or _cfg(params_file).repo,
        end_date=_when(end, "end"),
        start_date=_when(start, "start"),
        config_file=config_file,
        views=list(views) or None,
    )
    click.echo(json.dumps(summary, indent=2))


@features.command("eval-slices")
@PARAMS
@REPO
@CONFIG
@IMAGE_STATS
@path_option("--out", "out", "artifacts/eval_slices.parquet")
def eval_slices_cmd(
    params_file: Path, repo: Path | None, config_file: Path | None, image_stats: Path, out: Path
) -> None:
    """Write per-image evaluation slices read from the store (get_historical_features)."""
    from hairseg.stages.features import eval_slices_stage

    slices = eval_slices_stage(_cfg(params_file), repo, config_file, image_stats, out)
    click.echo(f"wrote {len(slices)} slice rows to {out}")


@features.command("build")
@PARAMS
@REPO
@CONFIG
@IMAGE_STATS
@path_option("--slices", "slices_out", "artifacts/eval_slices.parquet")
@path_option("--summary", "summary_out", "artifacts/features_summary.json")
def build_cmd(
    params_file: Path,
    repo: Path | None,
    config_file: Path | None,
    image_stats: Path,
    slices_out: Path,
    summary_out: Path,
) -> None:
    """apply + materialize + eval-slices, and a JSON summary (the `features` DVC stage)."""
    from hairseg.stages.features import features_build_stage

    result = features_build_stage(
        _cfg(params_file),
        image_stats=image_stats,
        slices_out=slices_out,
        summary_out=summary_out,
        repo=repo,
        config_file=config_file,
    )
    repo = result.repo
    click.echo(f"feature store ready in {repo}; summary in {summary_out}")


@features.command("online")
@PARAMS
@REPO
@CONFIG
@click.argument("customer_id")
def online_cmd(
    params_file: Path, repo: Path | None, config_file: Path | None, customer_id: str
) -> None:
    """Print a customer's online profile (customer_profile_v1) as JSON."""
    from dataclasses import asdict

    from hairseg.features.online import OnlineFeatures

    profile = OnlineFeatures(repo or _cfg(params_file).repo, config_file=config_file)
    found = profile.customer_profile(customer_id)
    if found is None:
        raise HairsegError(f"no online profile for customer {customer_id!r}")
    click.echo(json.dumps(asdict(found), indent=2))


@features.command("push-log")
@PARAMS
@REPO
@CONFIG
@path_option(
    "--log",
    "log_dir",
    ".hairseg/inference_log",
    help="Inference log folder written by the predictor.",
)
def push_log_cmd(
    params_file: Path, repo: Path | None, config_file: Path | None, log_dir: Path
) -> None:
    """Push new inference-log parts to inference_stats_v1 (online and offline)."""
    from hairseg.features.online import push_inference_log

    pushed = push_inference_log(repo or _cfg(params_file).repo, log_dir, config_file=config_file)
    click.echo(f"pushed {pushed['rows']} rows from {pushed['parts']} new part(s) of {log_dir}")
