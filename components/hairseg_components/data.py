"""Data components: make the dataset (DVC stage ``data``) and validate it (stage ``validate``)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from hairseg_components.image import component

__all__ = ["generate_data", "validate_data"]


@component
def generate_data(data_params: dict, dataset: Output[Dataset]) -> None:
    """Render the seeded demo dataset (``hairseg.data.generate.generate_dataset``) into a
    ``Dataset`` artifact whose path is the dataset folder (images/, masks/, manifest.parquet)."""
    from hairseg.data.generate import DataParams, generate_dataset
    from hairseg_components.runtime import stage_config

    cfg = stage_config("data", data_params, DataParams)
    result = generate_dataset(dataset.path, cfg, overwrite=True)
    dataset.metadata.update(
        {
            "format": "hairseg-dataset",
            "source": "demo",
            "manifest_sha256": result.manifest_sha256,
            "image_size": cfg.image_size,
            **{f"n_{split}": n for split, n in result.counts.items()},
        }
    )


@component
def validate_data(
    dataset: Input[Dataset],
    data_params: dict,
    validate_params: dict,
    image_stats: Output[Dataset],
    validation_metrics: Output[Metrics],
    data_docs: Output[HTML],
    validation_report: Output[Artifact],
) -> None:
    """The Great Expectations gate: ``hairseg data validate`` (DVC stage ``validate``).

    Fails the step, as the DVC stage does, when an expectation fails. Outputs the per-image
    statistics table (Feast ``image_stats_v1`` source, drift reference), the validation
    result page of the Data Docs as the step's HTML view, and the whole Data Docs site with
    ``result.json`` for download."""
    import shutil
    from pathlib import Path

    from hairseg.stages.data import validate_stage
    from hairseg_components.runtime import log_metrics, stage_configs, workdir

    reports = Path(validation_report.path)
    with workdir() as work:
        result = validate_stage(
            Path(dataset.path), stage_configs(validate=validate_params)[0],
            reports_dir=reports, stats_out=Path(image_stats.path),
            metrics_out=reports / "validation.json", models_dir=work / ".hairseg/models/mediapipe",
        )  # fmt: skip
    result.raise_if_failed()
    log_metrics(validation_metrics, result.metrics)
    pages = sorted((reports / "data_docs" / "validations").rglob("*.html"))
    shutil.copyfile(pages[-1] if pages else reports / "data_docs" / "index.html", data_docs.path)
    image_stats.metadata.update({"format": "parquet", "rows": result.n_images})
    validation_report.metadata["success"] = result.success
