"""Model-lifecycle components: train, quantize, evaluate, gate, register.

Each is the KFP door onto the stage its DVC stage runs (:mod:`hairseg.stages.lifecycle`):
it builds the typed configs from its ``*_params`` dicts (:func:`runtime.stage_config`),
calls the stage with its artifacts' ``.path``s and records metadata. The stage holds the
orchestration (MLflow run, champion comparison, lineage, model card), so ``dvc repro``
and the pipeline run the same code.
"""

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from hairseg_components.image import component

__all__ = ["evaluate_model", "gate_model", "quantize_model", "register_model", "train_model"]


@component
def train_model(
    dataset: Input[Dataset],
    model_params: dict,
    train_params: dict,
    mlflow_tracking_uri: str,
    model: Output[Model],
    train_metrics: Output[Metrics],
    train_files: Output[Artifact],
) -> None:
    """``hairseg train``: fine-tune (from the champion when compatible) with early stopping;
    the MLflow run holds params and per-epoch metrics. ``model`` is the folder with
    ``weights.pt`` + ``model_config.json``; ``train_files`` holds train.json,
    train_run.json and the train_curve.csv learning curve."""
    from pathlib import Path

    from hairseg.stages.lifecycle import train_stage
    from hairseg_components.runtime import log_metrics, stage_configs, workdir

    files = Path(train_files.path)
    model_cfg, train_cfg = stage_configs(model=model_params, train=train_params)
    with workdir() as work:
        result = train_stage(
            Path(dataset.path), Path(model.path),
            model_cfg=model_cfg, train_cfg=train_cfg,
            tracking_uri=mlflow_tracking_uri, metrics_path=files / "train.json",
            plot_path=files / "train_curve.csv", run_info_path=files / "train_run.json",
            checkpoints=work / "checkpoints",
        )  # fmt: skip
    log_metrics(train_metrics, result.summary)
    model.metadata.update(
        {"framework": "pytorch", "arch": result.arch, "input_size": result.input_size,
         "mlflow_run_id": result.run_id, "init_source": result.init_source}
    )  # fmt: skip


@component
def quantize_model(
    dataset: Input[Dataset],
    model: Input[Model],
    model_params: dict,
    train_params: dict,
    quantize_params: dict,
    onnx_model: Output[Model],
    quantize_metrics: Output[Metrics],
    quantize_files: Output[Artifact],
) -> None:
    """``hairseg quantize``: export ONNX fp32, quantize to int8 and pick the variant to ship.
    ``onnx_model`` is the trained model folder plus model.fp32.onnx / model.int8.onnx and
    selected.json (metadata ``variant``)."""
    import shutil
    from pathlib import Path

    from hairseg.stages.lifecycle import quantize_stage
    from hairseg_components.runtime import log_metrics, stage_configs

    shutil.copytree(model.path, onnx_model.path)  # the stage writes into its model folder
    train_cfg, quantize_cfg = stage_configs(train=train_params, quantize=quantize_params)
    result = quantize_stage(
        Path(dataset.path), Path(onnx_model.path), train_cfg=train_cfg, quantize_cfg=quantize_cfg,
        metrics_path=Path(quantize_files.path) / "quantize.json",
    )  # fmt: skip
    log_metrics(quantize_metrics, result.metrics)
    onnx_model.metadata.update(
        {"framework": "onnx", "variant": result.variant, "file": result.file,
         "params_hash": result.params_hash}
    )  # fmt: skip


@component
def evaluate_model(
    dataset: Input[Dataset],
    eval_slices: Input[Dataset],
    onnx_model: Input[Model],
    evaluate_params: dict,
    priors_params: dict,
    mlflow_tracking_uri: str,
    eval_metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> None:
    """``hairseg evaluate``: the shipped variant, the other variant and the registered
    champion on the test split (IoU, Dice, boundary F1, slices — the manifest's and the
    feature store's ``eval_slices`` —, latency). ``evaluation``
    holds evaluate.json, plots/*.csv, eval_per_image.parquet and model_card/gallery/."""
    from pathlib import Path

    from hairseg.stages.lifecycle import evaluate_stage
    from hairseg_components.runtime import log_metrics, stage_configs, workdir

    out = Path(evaluation.path)
    cfg, priors = stage_configs(evaluate=evaluate_params, priors=priors_params)
    with workdir() as work:
        result = evaluate_stage(
            Path(dataset.path), Path(onnx_model.path), cfg=cfg, priors=priors,
            tracking_uri=mlflow_tracking_uri, metrics_path=out / "evaluate.json",
            plots_dir=out / "plots", per_image_path=out / "eval_per_image.parquet",
            gallery_dir=out / "model_card" / "gallery", slices_path=Path(eval_slices.path),
            mediapipe_dir=work / ".hairseg" / "models" / "mediapipe",
        )  # fmt: skip
    log_metrics(eval_metrics, {"candidate": result.candidate})
    if result.champion.get("available"):
        log_metrics(eval_metrics, {"champion": result.champion})


@component
def gate_model(
    evaluation: Input[Artifact],
    train_files: Input[Artifact],
    quantize_files: Input[Artifact],
    onnx_model: Input[Model],
    gate_params: dict,
    gate_metrics: Output[Metrics],
    model_card: Output[Markdown],
    model_card_html: Output[HTML],
    gate_result: Output[Artifact],
) -> bool:
    """``hairseg gate``: may the candidate be promoted (IoU vs champion, floor, latency)?
    Writes the decision and the model card; returns ``passed`` for the pipeline's
    ``dsl.If``. The card renders in the UI as Markdown and as HTML with the gallery inlined."""
    import shutil
    from pathlib import Path

    from hairseg.stages.lifecycle import gate_stage
    from hairseg_components.runtime import card_html, log_metrics, stage_configs

    ev, out = Path(evaluation.path), Path(gate_result.path)
    card_dir = out / "model_card"
    shutil.copytree(ev / "model_card", card_dir)
    result = gate_stage(
        ev / "evaluate.json", cfg=stage_configs(gate=gate_params)[0],
        train_metrics=Path(train_files.path) / "train.json",
        quantize_metrics=Path(quantize_files.path) / "quantize.json",
        model_dir=Path(onnx_model.path), plots_dir=ev / "plots",
        gallery_dir=card_dir / "gallery", out_path=out / "gate.json",
        card_path=card_dir / "model_card.md",
    )  # fmt: skip
    log_metrics(gate_metrics, {k: v for k, v in result.decision.items() if k != "passed_int"})
    shutil.copyfile(result.card_path, model_card.path)
    Path(model_card_html.path).write_text(card_html(result.card_path))
    gate_result.metadata["passed"] = result.passed
    return result.passed


@component
def register_model(
    dataset: Input[Dataset],
    onnx_model: Input[Model],
    evaluation: Input[Artifact],
    gate_result: Input[Artifact],
    train_files: Input[Artifact],
    model_params: dict,
    train_params: dict,
    quantize_params: dict,
    register_params: dict,
    mlflow_tracking_uri: str,
    git_commit: str,
    pipeline_name: str,
    pipeline_version: str,
    pipeline_run_id: str,
    registration: Output[Artifact],
    register_metrics: Output[Metrics],
) -> str:
    """``hairseg register``: a new version of MLflow model ``hairseg`` (alias candidate;
    champion on bootstrap) tagged with :func:`hairseg.lineage.collect` exactly as the DVC
    stage tags it (git commit, ``dataset``'s DVC hash, the params hash of ``model_params``,
    ``train_params`` and ``quantize_params``, the KFP run id, the init source) plus the
    pipeline's name and version. The other sections do not enter the lineage (see
    ``hairseg.lineage.PARAMS_HASH_SECTIONS``), so the step does not take them. Returns
    ``models:/hairseg/<version>``."""
    from pathlib import Path

    from hairseg.stages.lifecycle import register_stage
    from hairseg_components.runtime import log_metrics, stage_configs

    gate_dir = Path(gate_result.path)
    cfg, model_cfg, train_cfg, quantize_cfg = stage_configs(
        register=register_params, model=model_params, train=train_params, quantize=quantize_params
    )
    result = register_stage(
        Path(onnx_model.path), cfg=cfg, model_cfg=model_cfg, train_cfg=train_cfg,
        quantize_cfg=quantize_cfg,
        tracking_uri=mlflow_tracking_uri, evaluation_path=Path(evaluation.path) / "evaluate.json",
        gate_path=gate_dir / "gate.json", run_info_path=Path(train_files.path) / "train_run.json",
        card_dir=gate_dir / "model_card", out_path=Path(registration.path) / "register.json",
        pipeline_run_id=pipeline_run_id, data_dir=Path(dataset.path), git_commit=git_commit,
        extra_lineage={"pipeline_name": pipeline_name, "pipeline_version": pipeline_version},
    )  # fmt: skip
    log_metrics(register_metrics, {"version": result.version})
    registration.metadata.update(
        {"model_uri": result.model_uri, "aliases": ",".join(result.aliases)}
    )
    return result.model_uri
