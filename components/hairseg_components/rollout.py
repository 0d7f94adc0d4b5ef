"""Rollout component: canary rollout of the registered candidate (``hairseg rollout``)."""

from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from hairseg_components.image import component

__all__ = ["canary_rollout"]


@component
def canary_rollout(
    dataset: Input[Dataset],
    model_uri: str,
    rollout_params: dict,
    rollout_backend: str,
    mlflow_tracking_uri: str,
    rollout_report: Output[Markdown],
    rollout_record: Output[Artifact],
    rollout_metrics: Output[Metrics],
) -> str:
    """``hairseg.rollout.factory.rollout_from_params``: shift traffic to ``model_uri`` in
    steps, analyse canary vs stable, then promote it to champion or roll it back
    (``kserve``: the cluster's InferenceService; ``local``: loopback predictor servers
    replaying the dataset's test split). Returns the outcome; a rollback is an outcome
    recorded on the model version, not a step failure."""
    from pathlib import Path

    from hairseg.stages.rollout import rollout_markdown, rollout_stage
    from hairseg_components.runtime import log_metrics, stage_configs, workdir

    records = Path(rollout_record.path)
    with workdir() as work:
        result = rollout_stage(
            stage_configs(rollout=rollout_params)[0], backend=rollout_backend,
            tracking_uri=mlflow_tracking_uri, candidate_uri=model_uri,
            dataset=Path(dataset.path), reports_dir=records,
            state_path=work / "rollout_state.json", cache_dir=work / "models",
        )  # fmt: skip
    Path(rollout_report.path).write_text(rollout_markdown(result, records))
    log_metrics(rollout_metrics, result.metrics())
    rollout_record.metadata.update({"outcome": result.outcome, "summary": result.summary()})
    print(result.summary())
    return result.outcome
