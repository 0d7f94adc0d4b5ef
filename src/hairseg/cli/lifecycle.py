"""``hairseg train | quantize | evaluate | gate | register``: the CLI door onto the
lifecycle stages (:mod:`hairseg.stages.lifecycle`).

Each command parses its options, builds the typed configs from ``params.yaml``, calls
its stage and prints one summary line; ``dvc repro`` runs these commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hairseg.cli.options import params_option, path_option, resolve_tracking_uri, tracking_option
from hairseg.errors import HairsegError

_existing_dir = click.Path(path_type=Path, exists=True, file_okay=False)


def _configs(params_path: Path, *sections: str) -> tuple[Any, ...]:
    """The typed configs of ``sections`` of the params file, in that order."""
    from hairseg.config import load_params
    from hairseg.stages.configs import typed_configs

    return typed_configs(load_params(params_path), *sections)


def _data_option():
    return click.option(
        "--data", "data_dir", type=_existing_dir, default=Path("data"), show_default=True
    )


def _model_dir_option():
    return click.option(
        "--model-dir", type=_existing_dir, default=Path("models"), show_default=True
    )


@click.command("train")
@_data_option()
@path_option("--out", "out_dir", "models")
@path_option("--metrics", "metrics_path", "metrics/train.json")
@path_option("--plot", "plot_path", "plots/train_curve.csv")
@path_option("--run-info", "run_info_path", "artifacts/train_run.json")
@path_option(
    "--checkpoints",
    "checkpoints",
    ".hairseg/checkpoints",
    help="Resumable checkpoints (an interrupted run continues from its last epoch).",
)
@click.option(
    "--init",
    "init_override",
    default=None,
    help="Override train.init: champion, scratch or a models:/ URI.",
)
@params_option()
@tracking_option()
def train(
    data_dir: Path,
    out_dir: Path,
    metrics_path: Path,
    plot_path: Path,
    run_info_path: Path,
    checkpoints: Path,
    init_override: str | None,
    params_path: Path,
    tracking_uri: str | None,
) -> None:
    """Fine-tune the segmentation network on DATA's train split (early stopping on val)."""
    from hairseg.stages.lifecycle import train_stage

    model_cfg, train_cfg = _configs(params_path, "model", "train")
    result = train_stage(
        data_dir,
        out_dir,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        tracking_uri=resolve_tracking_uri(tracking_uri),
        metrics_path=metrics_path,
        plot_path=plot_path,
        run_info_path=run_info_path,
        checkpoints=checkpoints,
        init=init_override,
    )
    s = result.summary
    click.echo(
        f"trained {result.arch} ({result.init_source}): best val IoU {s['best_val_iou']:.4f} "
        f"at epoch {s['best_epoch']}, {s['seconds']:.0f} s -> {out_dir}"
    )


@click.command("quantize")
@_data_option()
@_model_dir_option()
@path_option("--metrics", "metrics_path", "metrics/quantize.json")
@params_option()
def quantize(data_dir: Path, model_dir: Path, metrics_path: Path, params_path: Path) -> None:
    """Export MODEL_DIR/weights.pt to ONNX (fp32) and int8; pick the one to ship."""
    from hairseg.stages.lifecycle import quantize_stage

    train_cfg, quantize_cfg = _configs(params_path, "train", "quantize")
    result = quantize_stage(
        data_dir,
        model_dir,
        train_cfg=train_cfg,
        quantize_cfg=quantize_cfg,
        metrics_path=metrics_path,
    )
    click.echo(f"shipping {result.variant}: {result.reason}")


@click.command("evaluate")
@_data_option()
@_model_dir_option()
@path_option("--metrics", "metrics_path", "metrics/evaluate.json")
@path_option("--plots-dir", "plots_dir", "plots")
@path_option("--per-image", "per_image_path", "artifacts/eval_per_image.parquet")
@path_option("--gallery", "gallery_dir", "reports/model_card/gallery")
@click.option(
    "--champion/--no-champion",
    default=True,
    show_default=True,
    help="Also evaluate the registered champion (when one exists).",
)
@path_option("--mediapipe-dir", "mediapipe_dir", ".hairseg/models/mediapipe")
@click.option(
    "--slices",
    "slices_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Feature-store slice labels (artifacts/eval_slices.parquet) for extra per-slice IoU.",
)
@params_option()
@tracking_option()
def evaluate(
    data_dir: Path,
    model_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    per_image_path: Path,
    gallery_dir: Path,
    champion: bool,
    mediapipe_dir: Path,
    slices_path: Path | None,
    params_path: Path,
    tracking_uri: str | None,
) -> None:
    """Evaluate fp32, int8, the champion and MediaPipe baselines on the test split."""
    from hairseg.stages.lifecycle import evaluate_stage

    # The real-photo priors are fused exactly as serving fuses them (params.yaml priors:).
    cfg, priors = _configs(params_path, "evaluate", "priors")
    result = evaluate_stage(
        data_dir,
        model_dir,
        cfg=cfg,
        priors=priors,
        tracking_uri=resolve_tracking_uri(tracking_uri) if champion else None,
        metrics_path=metrics_path,
        plots_dir=plots_dir,
        per_image_path=per_image_path,
        gallery_dir=gallery_dir,
        mediapipe_dir=mediapipe_dir,
        slices_path=slices_path,
    )
    s = result.candidate
    click.echo(
        f"{result.shipped}: test IoU {s['iou']:.4f}, Dice {s['dice']:.4f}, boundary F1 "
        f"{s['boundary_f1']:.4f}, p50 b1 {s.get('latency_ms_b1_p50', float('nan')):.2f} ms"
    )
    for key, note in result.notes.items():
        click.echo(f"{key}: {note}")


@click.command("gate")
@path_option("--evaluation", "evaluation_path", "metrics/evaluate.json")
@path_option("--train-metrics", "train_metrics", "metrics/train.json")
@path_option("--quantize-metrics", "quantize_metrics", "metrics/quantize.json")
@_model_dir_option()
@path_option("--plots-dir", "plots_dir", "plots")
@path_option("--gallery", "gallery_dir", "reports/model_card/gallery")
@path_option("--out", "out_path", "metrics/gate.json")
@path_option("--card", "card_path", "reports/model_card/model_card.md")
@click.option("--strict", is_flag=True, help="Exit 1 when the candidate fails the gate.")
@params_option()
def gate(
    evaluation_path: Path,
    train_metrics: Path,
    quantize_metrics: Path,
    model_dir: Path,
    plots_dir: Path,
    gallery_dir: Path,
    out_path: Path,
    card_path: Path,
    strict: bool,
    params_path: Path,
) -> None:
    """Decide whether the candidate may be promoted; write the decision and the model card."""
    from hairseg.stages.lifecycle import gate_stage

    result = gate_stage(
        evaluation_path,
        cfg=_configs(params_path, "gate")[0],
        train_metrics=train_metrics,
        quantize_metrics=quantize_metrics,
        model_dir=model_dir,
        plots_dir=plots_dir,
        gallery_dir=gallery_dir,
        out_path=out_path,
        card_path=card_path,
    )
    click.echo(f"gate: {'PASS' if result.passed else 'FAIL'} — " + "; ".join(result.reasons))
    if strict and not result.passed:
        raise HairsegError("candidate failed the promotion gate", exit_code=1)


@click.command("register")
@_model_dir_option()
@path_option("--evaluation", "evaluation_path", "metrics/evaluate.json")
@path_option("--gate", "gate_path", "metrics/gate.json")
@path_option("--run-info", "run_info_path", "artifacts/train_run.json")
@path_option("--card-dir", "card_dir", "reports/model_card")
@path_option(
    "--data-dvc", "data_dvc", "data.dvc", help="DVC file whose md5 is the data lineage tag."
)
@click.option(
    "--pipeline-run-id",
    default="local",
    show_default=True,
    help="Pipeline run id for lineage (KFP passes its run id).",
)
@path_option("--out", "out_path", "metrics/register.json")
@click.option(
    "--no-bootstrap",
    is_flag=True,
    help="Never make this version champion (overrides register.bootstrap_champion).",
)
@params_option()
@tracking_option()
def register(
    model_dir: Path,
    evaluation_path: Path,
    gate_path: Path,
    run_info_path: Path,
    card_dir: Path,
    data_dvc: Path,
    pipeline_run_id: str,
    out_path: Path,
    no_bootstrap: bool,
    params_path: Path,
    tracking_uri: str | None,
) -> None:
    """Register the shipped model in MLflow as a new version of 'hairseg' (alias candidate)."""
    from hairseg import registry
    from hairseg.stages.lifecycle import register_stage

    cfg, model_cfg, train_cfg, quantize_cfg = _configs(
        params_path, "register", "model", "train", "quantize"
    )
    result = register_stage(
        model_dir,
        cfg=cfg,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        quantize_cfg=quantize_cfg,
        tracking_uri=resolve_tracking_uri(tracking_uri),
        evaluation_path=evaluation_path,
        gate_path=gate_path,
        run_info_path=run_info_path,
        card_dir=card_dir,
        out_path=out_path,
        pipeline_run_id=pipeline_run_id,
        data_dvc=data_dvc,
        bootstrap=not no_bootstrap,
    )
    aliases = ", ".join(result.aliases) or "none (gate failed)"
    click.echo(f"registered {registry.MODEL_NAME} v{result.version}; aliases: {aliases}")
