"""Model-lifecycle components: train, quantize, evaluate, gate, register.

Each runs the ``hairseg`` command its DVC stage runs (``hairseg.cli.lifecycle``), in
process, with the stage's inputs and outputs pointed at KFP artifacts and its
``params.yaml`` sections written from the pipeline parameters. The lifecycle commands
hold the stage orchestration (MLflow run, champion comparison, model card), so calling
them, not re-assembling their pieces, keeps ``dvc repro`` and the pipeline identical.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from hairseg_components.image import BASE_IMAGE

__all__ = ["evaluate_model", "gate_model", "quantize_model", "register_model", "train_model"]


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
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

    from hairseg_components.runtime import (
        hairseg_cli,
        log_metrics,
        read_json,
        workdir,
        write_params,
    )

    files = Path(train_files.path)
    with workdir() as work:
        params = write_params(work / "params.yaml", {"model": model_params, "train": train_params})
        hairseg_cli(
            "train", "--data", dataset.path, "--out", model.path,
            "--metrics", files / "train.json", "--plot", files / "train_curve.csv",
            "--run-info", files / "train_run.json", "--checkpoints", work / "checkpoints",
            "--params", params, "--tracking-uri", mlflow_tracking_uri,
        )  # fmt: skip
    summary = read_json(files / "train.json")
    log_metrics(train_metrics, summary)
    run = read_json(files / "train_run.json")
    config = read_json(Path(model.path) / "model_config.json")
    model.metadata.update(
        {
            "framework": "pytorch",
            "arch": config.get("arch", ""),
            "input_size": config.get("input_size", 0),
            "mlflow_run_id": run["run_id"],
            "init_source": run.get("init_source", ""),
        }
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
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

    from hairseg_components.runtime import (
        hairseg_cli,
        log_metrics,
        read_json,
        workdir,
        write_params,
    )

    shutil.copytree(model.path, onnx_model.path)  # the command writes into its model folder
    out = Path(quantize_files.path) / "quantize.json"
    with workdir() as work:
        params = write_params(
            work / "params.yaml",
            {"model": model_params, "train": train_params, "quantize": quantize_params},
        )
        hairseg_cli(
            "quantize", "--data", dataset.path, "--model-dir", onnx_model.path,
            "--metrics", out, "--params", params,
        )  # fmt: skip
    log_metrics(quantize_metrics, read_json(out))
    selected = read_json(Path(onnx_model.path) / "selected.json")
    onnx_model.metadata.update(
        {"framework": "onnx", "variant": selected["variant"], "file": selected["file"]}
    )


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
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

    from hairseg_components.runtime import (
        hairseg_cli,
        log_metrics,
        read_json,
        workdir,
        write_params,
    )

    out = Path(evaluation.path)
    with workdir() as work:
        params = write_params(
            work / "params.yaml", {"evaluate": evaluate_params, "priors": priors_params}
        )
        hairseg_cli(
            "evaluate", "--data", dataset.path, "--model-dir", onnx_model.path,
            "--metrics", out / "evaluate.json", "--plots-dir", out / "plots",
            "--per-image", out / "eval_per_image.parquet",
            "--gallery", out / "model_card" / "gallery", "--slices", eval_slices.path,
            "--params", params, "--tracking-uri", mlflow_tracking_uri,
        )  # fmt: skip
    result = read_json(out / "evaluate.json")
    log_metrics(eval_metrics, {"candidate": result["candidate"]})
    champion = result.get("champion") or {}
    if champion.get("available"):
        log_metrics(eval_metrics, {"champion": champion})


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
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
    import base64
    import html
    import re
    import shutil
    from pathlib import Path

    from hairseg_components.runtime import (
        hairseg_cli,
        log_metrics,
        read_json,
        workdir,
        write_params,
    )

    ev, out = Path(evaluation.path), Path(gate_result.path)
    card_dir = out / "model_card"
    shutil.copytree(ev / "model_card", card_dir)
    with workdir() as work:
        params = write_params(work / "params.yaml", {"gate": gate_params})
        hairseg_cli(
            "gate", "--evaluation", ev / "evaluate.json",
            "--train-metrics", Path(train_files.path) / "train.json",
            "--quantize-metrics", Path(quantize_files.path) / "quantize.json",
            "--model-dir", onnx_model.path, "--plots-dir", ev / "plots",
            "--gallery", card_dir / "gallery", "--out", out / "gate.json",
            "--card", card_dir / "model_card.md", "--params", params,
        )  # fmt: skip
    decision = read_json(out / "gate.json")
    log_metrics(gate_metrics, {k: v for k, v in decision.items() if k != "passed_int"})
    card = (card_dir / "model_card.md").read_text()
    Path(model_card.path).write_text(card)

    # The UI shows one HTML file: inline the gallery images the card links to.
    def inline(match: re.Match[str]) -> str:
        target = card_dir / match.group(2)
        if not target.is_file():
            return match.group(0)
        data = base64.b64encode(target.read_bytes()).decode()
        return f'<img alt="{html.escape(match.group(1))}" src="data:image/png;base64,{data}">'

    body = re.sub(r"!\[([^\]]*)\]\(([^)]+\.png)\)", inline, html.escape(card, quote=False))
    Path(model_card_html.path).write_text(
        "<!doctype html><meta charset='utf-8'><title>hairseg model card</title>"
        f"<pre style='white-space:pre-wrap;font-family:sans-serif'>{body}</pre>"
    )
    gate_result.metadata["passed"] = bool(decision["passed"])
    return bool(decision["passed"])


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False, packages_to_install=[])
def register_model(
    dataset: Input[Dataset],
    onnx_model: Input[Model],
    evaluation: Input[Artifact],
    gate_result: Input[Artifact],
    train_files: Input[Artifact],
    data_params: dict,
    validate_params: dict,
    features_params: dict,
    model_params: dict,
    train_params: dict,
    quantize_params: dict,
    evaluate_params: dict,
    gate_params: dict,
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
    champion on bootstrap) tagged with lineage, then the pipeline's own lineage tags
    (git commit, pipeline name/version, run id). The ``*_params`` sections are the
    params.yaml the run used (their hash is the ``params_hash`` tag). Returns the model URI
    ``models:/hairseg/<version>``."""
    import os
    from pathlib import Path

    import yaml

    from hairseg import registry
    from hairseg.data.ensure import dvc_dir_hash
    from hairseg_components.runtime import (
        hairseg_cli,
        log_metrics,
        read_json,
        workdir,
        write_params,
    )

    ev, out = Path(evaluation.path), Path(registration.path) / "register.json"
    with workdir() as work:
        params_file = write_params(
            work / "params.yaml",
            {
                "data": data_params,
                "validate": validate_params,
                "features": features_params,
                "model": model_params,
                "train": train_params,
                "quantize": quantize_params,
                "evaluate": evaluate_params,
                "gate": gate_params,
                "register": register_params,
            },
        )
        md5, nfiles = dvc_dir_hash(dataset.path)  # what `dvc add` would record for it
        data_dvc = work / "data.dvc"
        data_dvc.write_text(
            yaml.safe_dump({"outs": [{"md5": md5, "nfiles": nfiles, "path": "data"}]})
        )
        hairseg_cli(
            "register", "--model-dir", onnx_model.path, "--evaluation", ev / "evaluate.json",
            "--gate", Path(gate_result.path) / "gate.json",
            "--run-info", Path(train_files.path) / "train_run.json",
            "--card-dir", Path(gate_result.path) / "model_card", "--data-dvc", data_dvc,
            "--pipeline-run-id", pipeline_run_id, "--out", out,
            "--params", params_file, "--tracking-uri", mlflow_tracking_uri,
        )  # fmt: skip
    result = read_json(out)
    commit = git_commit or os.environ.get("HAIRSEG_GIT_COMMIT", "")
    lineage = {"pipeline_name": pipeline_name, "pipeline_version": pipeline_version}
    if commit:
        lineage["git_commit"] = commit
    registry.tag_version(mlflow_tracking_uri, int(result["version"]), lineage)
    log_metrics(register_metrics, {"version": result["version"]})
    registration.metadata.update(
        {"model_uri": result["model_uri"], "aliases": ",".join(result["aliases"])}
    )
    return str(result["model_uri"])
