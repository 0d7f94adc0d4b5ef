"""Batch-prediction components (``hairseg predict``, :mod:`hairseg.batch`): list the inputs
into shards, predict one shard, aggregate the shards' tables into one."""

from typing import List  # noqa: UP035 - KFP reads the annotation: Input[List[Dataset]]

from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from hairseg_components.image import component

__all__ = ["aggregate_predictions", "list_batch_inputs", "predict_shard"]


@component
def list_batch_inputs(src: str, n_shards: int, listing: Output[Dataset]) -> list:
    """Every input under ``src`` (folder, glob or s3:// gs:// az:// URI) into ``listing``
    (JSON ``[{id, uri}]``, sorted); returns the shard specs ``["0/k", …]``, k = min(n_shards,
    number of inputs), one per ``ParallelFor`` iteration."""
    from hairseg.batch import list_inputs
    from hairseg.errors import HairsegError
    from hairseg_components.runtime import write_json

    if n_shards < 1:
        raise HairsegError(f"n_shards must be >= 1, got {n_shards}")
    items = list_inputs(src)
    if not items:
        raise HairsegError(f"no inputs under {src!r}")
    write_json(listing.path, [{"id": it.id, "uri": it.uri} for it in items])
    listing.metadata["n_inputs"] = len(items)
    count = min(n_shards, len(items))
    return [f"{i}/{count}" for i in range(count)]


@component
def predict_shard(
    listing: Input[Dataset],
    shard: str,
    model_uri: str,
    batch_params: dict,
    mlflow_tracking_uri: str,
    predictions: Output[Dataset],
) -> int:
    """``hairseg predict`` over shard ``shard`` of the listing: masks (and try-ons) and the
    shard's results table in ``predictions``. Bad inputs are failed rows, not a failed
    step; returns how many failed."""
    import logging
    from pathlib import Path

    from hairseg import registry
    from hairseg.batch import BatchConfig, InputItem, parse_shard, run_batch, select
    from hairseg_components.runtime import read_json, stage_config, workdir

    cfg = stage_config("batch", batch_params, BatchConfig)
    spec = parse_shard(shard)
    items = select([InputItem(**d) for d in read_json(listing.path)], spec)
    with workdir() as tmp:
        registered = None
        if model_uri.startswith("models:/"):
            version = registry.resolve_version(mlflow_tracking_uri, model_uri)
            registered = f"models:/{registry.MODEL_NAME}/{version}"
        model = registry.fetch_onnx(model_uri, tmp / "models", mlflow_tracking_uri)
        summary = run_batch(
            items, Path(predictions.path), model, cfg, shard=spec, registered_version=registered
        )
    logging.getLogger("hairseg.batch").warning("shard %s: %s", shard, summary.line())
    predictions.metadata.update(
        {"shard": shard, "n_ok": summary.n_ok, "n_failed": summary.n_failed}
    )
    return summary.n_failed


@component
def aggregate_predictions(
    shards: Input[List[Dataset]],  # noqa: UP006
    results: Output[Dataset],
    summary: Output[Markdown],
    metrics: Output[Metrics],
) -> int:
    """One results table over every shard (``results/results.parquet``, with the shard
    artifact each mask lives in) and a summary: counts, failure kinds, coverage histogram.
    Returns the number of failed inputs."""
    from pathlib import Path

    import pandas as pd

    from hairseg.batch import read_results, render_summary, summarise
    from hairseg_components.runtime import log_metrics, write_json

    frames = []
    for shard in shards:
        df = read_results(shard.path)
        df["shard_uri"] = shard.uri
        frames.append(df)
    table = pd.concat(frames, ignore_index=True).sort_values("id", kind="stable")
    out = Path(results.path)
    out.mkdir(parents=True, exist_ok=True)
    table.reset_index(drop=True).to_parquet(out / "results.parquet", index=False)
    stats = summarise(table)
    write_json(out / "summary.json", stats)
    Path(summary.path).write_text(render_summary(stats, table))
    log_metrics(metrics, {k: v for k, v in stats.items() if k != "coverage_histogram"})
    results.metadata.update({"n": stats["n"], "n_failed": stats["n_failed"]})
    return int(stats["n_failed"])
