"""Rollout component: canary rollout of the registered candidate (``hairseg rollout``)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from hairseg_components.image import BASE_IMAGE

__all__ = ["canary_rollout"]


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
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
    import shutil
    from pathlib import Path

    from hairseg.rollout.factory import rollout_from_params
    from hairseg_components.runtime import ints_back, log_metrics, workdir

    records = Path(rollout_record.path)
    with workdir() as work:
        result = rollout_from_params(
            {"rollout": ints_back(rollout_params)},
            tracking_uri=mlflow_tracking_uri,
            backend=rollout_backend,
            candidate_uri=model_uri,
            dataset=dataset.path,
            reports_dir=records,
            state_path=work / "rollout_state.json",
            cache_dir=work / "models",
        )
    markdown = records / "latest.md"
    if result.record_path is not None and result.record_path.with_suffix(".md").is_file():
        markdown = result.record_path.with_suffix(".md")
    if markdown.is_file():
        shutil.copyfile(markdown, rollout_report.path)
    else:
        Path(rollout_report.path).write_text(f"# Rollout\n\n{result.summary()}\n")
    log_metrics(
        rollout_metrics,
        {
            "promoted": result.outcome == "promoted",
            "steps": len(result.record.get("steps", [])),
            "candidate_version": result.candidate_version or 0,
            "champion_version": result.champion_version or 0,
        },
    )
    rollout_record.metadata.update({"outcome": result.outcome, "summary": result.summary()})
    print(result.summary())
    return result.outcome
