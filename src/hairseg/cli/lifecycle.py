"""``hairseg train | quantize | evaluate | gate | register``: the CLI door onto the
lifecycle stages (:mod:`hairseg.stages.lifecycle`).

Each command parses its options, builds the typed configs from ``params.yaml``, calls
its stage and prints one summary line; ``dvc repro`` runs these commands. The path
options are named as the stage's parameters and reach it unchanged (``**paths``).
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
    "--init", default=None, help="Override train.init: champion, scratch or a models:/ URI."
)
@params_option()
@tracking_option()
def train(init: str | None, params_path: Path, tracking_uri: str | None, **paths: Path) -> None:
    """Fine-tune the segmentation network on DATA's train split (early stopping on val)."""
    from hairseg.stages.lifecycle import train_stage

    model_cfg, train_cfg = _configs(params_path, "model", "train")
    result = train_stage(
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        tracking_uri=resolve_tracking_uri(tracking_uri),
        init=init,
        **paths,
    )
    s = result.summary
    click.echo(
        f"trained {result.arch} ({result.init_source}): best val IoU {s['best_val_iou']:.4f} "
        f"at epoch {s['best_epoch']}, {s['seconds']:.0f} s -> {paths['out_dir']}"
    )


@click.command("quantize")
@_data_option()
@_model_dir_option()
@path_option("--metrics", "metrics_path", "metrics/quantize.json")
@params_option()
def quantize(params_path: Path, **paths: Path) -> None:
    """Export MODEL_DIR/weights.pt to ONNX (fp32) and int8; pick the one to ship."""
    from hairseg.stages.lifecycle import quantize_stage

    train_cfg, quantize_cfg = _configs(params_path, "train", "quantize")
    result = quantize_stage(train_cfg=train_cfg, quantize_cfg=quantize_cfg, **paths)
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
def evaluate(champion: bool, params_path: Path, tracking_uri: str | None, **paths: Path) -> None:
    """Evaluate fp32, int8, the champion and MediaPipe baselines on the test split."""
    from hairseg.stages.lifecycle import evaluate_stage

    # The real-photo priors are fused exactly as serving fuses them (params.yaml priors:).
    cfg, priors = _configs(params_path, "evaluate", "priors")
    result = evaluate_stage(
        cfg=cfg,
        priors=priors,
        tracking_uri=resolve_tracking_uri(tracking_uri) if champion else None,
        **paths,
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
def gate(strict: bool, params_path: Path, **paths: Path) -> None:
    """Decide whether the candidate may be promoted; write the decision and the model card."""
    from hairseg.stages.lifecycle import gate_stage

    result = gate_stage(cfg=_configs(params_path, "gate")[0], **paths)
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
    pipeline_run_id: str,
    no_bootstrap: bool,
    params_path: Path,
    tracking_uri: str | None,
    **paths: Path,
) -> None:
    """Register the shipped model in MLflow as a new version of 'hairseg' (alias candidate)."""
    from hairseg import registry
    from hairseg.stages.lifecycle import register_stage

    cfg, model_cfg, train_cfg, quantize_cfg = _configs(
        params_path, "register", "model", "train", "quantize"
    )
    result = register_stage(
        cfg=cfg,
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        quantize_cfg=quantize_cfg,
        tracking_uri=resolve_tracking_uri(tracking_uri),
        pipeline_run_id=pipeline_run_id,
        bootstrap=not no_bootstrap,
        **paths,
    )
    aliases = ", ".join(result.aliases) or "none (gate failed)"
    click.echo(f"registered {registry.MODEL_NAME} v{result.version}; aliases: {aliases}")
