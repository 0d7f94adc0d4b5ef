"""Feature component: the Feast repo build (``hairseg features build``)."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from hairseg_components.image import component

__all__ = ["build_features"]


@component
def build_features(
    image_stats: Input[Dataset],
    features_params: dict,
    feast_repo: str,
    feast_config: str,
    eval_slices: Output[Dataset],
    features_summary: Output[Artifact],
    feature_metrics: Output[Metrics],
) -> None:
    """``feast apply`` + materialize + point-in-time evaluation slices for this run's images.

    The repo's definitions are copied into the step's scratch folder with this run's image
    statistics where ``image_stats_v1`` reads them (``../artifacts/image_stats.parquet``).
    With the local config (``feature_store.yaml``) the registry and online store live in
    that scratch copy and the demo customer table is generated; with
    ``feature_store.cluster.yaml`` they are the cluster's (object storage + Redis)."""
    import shutil
    from pathlib import Path

    from hairseg.stages.features import demo_customers_stage, features_build_stage
    from hairseg_components.runtime import log_metrics, stage_configs, workdir

    with workdir() as work:
        repo = work / "feature_repo"
        shutil.copytree(
            feast_repo, repo, ignore=shutil.ignore_patterns("data", "__pycache__", ".*")
        )
        stats = work / "artifacts" / "image_stats.parquet"
        stats.parent.mkdir(parents=True)
        shutil.copyfile(image_stats.path, stats)
        (cfg,) = stage_configs(features={**features_params, "repo": str(repo)})
        if feast_config == "feature_store.yaml":
            demo_customers_stage(cfg)
        result = features_build_stage(
            cfg, image_stats=stats, slices_out=Path(eval_slices.path), repo=repo,
            summary_out=Path(features_summary.path) / "features_summary.json",
            config_file=repo / feast_config,
        )  # fmt: skip
    online = {f"online.{k}": v for k, v in result.materialized.items()}
    log_metrics(feature_metrics, {"feature_views": len(result.feature_views), **online})
    eval_slices.metadata["format"] = "parquet"
