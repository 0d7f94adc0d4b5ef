"""``hairseg train | quantize | evaluate | gate | register``: thin doors onto the core.

Each command reads its ``params.yaml`` section(s), calls one core function and writes
its outputs (models, metrics JSON for ``dvc metrics``, CSV for ``dvc plots``). Only this
module reads ``MLFLOW_TRACKING_URI`` (default: SQLite under ``.hairseg/``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.jsonio import write_json_atomic

log = logging.getLogger("hairseg.lifecycle")

# OpenMP threads that spin while waiting burn the CPU another process needs: on a shared
# 2-core box one training step then costs ~10x the CPU. libgomp reads this when torch loads
# it, and torch is imported only inside the commands below, so this still takes effect.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_path = click.Path(path_type=Path)
_existing_dir = click.Path(path_type=Path, exists=True, file_okay=False)


def _tracking_uri(explicit: str | None) -> str:
    from hairseg.registry import default_tracking_uri

    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(Path.cwd())


def _params(path: Path) -> dict[str, Any]:
    from hairseg.config import load_params

    return load_params(path)


def _write_json(path: Path, payload: Any) -> None:
    write_json_atomic(path, payload, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    if not path.is_file():
        raise HairsegError(f"{path} not found: {hint}", exit_code=EXIT_USAGE)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HairsegError(f"{path} is not valid JSON: {exc}") from None


def _flatten(prefix: str, mapping: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(_flatten(name, value))
        else:
            out[name] = value
    return out


def _path_option(flag: str, dest: str, default: str, help: str | None = None):
    """A ``--flag PATH`` option with a default (shown in ``--help``)."""
    return click.option(flag, dest, type=_path, default=Path(default), show_default=True, help=help)


tracking_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///.hairseg/mlflow.db).",
)
params_option = click.option(
    "--params",
    "params_path",
    type=_path,
    default=Path("params.yaml"),
    show_default=True,
    help="Parameters file.",
)


def resolve_init(
    init: str, model_cfg: Any, tracking_uri: str, cache: Path
) -> tuple[dict[str, Any] | None, str]:
    """Initial weights for training and a description of where they came from.

    ``champion``: the champion's weights when a champion exists and has the same
    architecture, otherwise scratch (the reason is in the description). ``scratch``: none.
    ``models:/…``: that version's weights, or an error.
    """
    import torch

    from hairseg import registry
    from hairseg.config import from_mapping
    from hairseg.model import ModelConfig

    if init == "scratch":
        return None, "scratch"
    if init == "champion":
        info = registry.get_version(tracking_uri, registry.CHAMPION)
        if info is None:
            return None, "scratch (no champion registered)"
        uri = f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}"
    elif init.startswith("models:/"):
        uri = init
    else:
        raise HairsegError(
            f"train.init {init!r} is not 'champion', 'scratch' or a models:/ URI",
            exit_code=EXIT_USAGE,
        )
    weights, config = registry.fetch_weights(uri, cache, tracking_uri)
    version = weights.parent.parent.name.rsplit("-v", 1)[-1]
    their_cfg = from_mapping(ModelConfig, json.loads(config.read_text()), where="model")
    if asdict(their_cfg) != asdict(model_cfg):
        if init == "champion":
            return None, f"scratch (champion v{version} has a different model config)"
        raise HairsegError(f"{uri} was trained with a different model config: {asdict(their_cfg)}")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return state, f"{uri} (v{version})"


@click.command("train")
@click.option("--data", "data_dir", type=_existing_dir, default=Path("data"), show_default=True)
@_path_option("--out", "out_dir", "models")
@_path_option("--metrics", "metrics_path", "metrics/train.json")
@_path_option("--plot", "plot_path", "plots/train_curve.csv")
@_path_option("--run-info", "run_info_path", "artifacts/train_run.json")
@_path_option(
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
@params_option
@tracking_option
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
    import mlflow
    import pandas as pd

    from hairseg import registry
    from hairseg.config import section
    from hairseg.model import ModelConfig, save_model
    from hairseg.train import TrainConfig, fit, load_split

    params = _params(params_path)
    model_cfg = section(params, "model", ModelConfig)
    cfg = section(params, "train", TrainConfig)
    init = init_override or cfg.init
    uri = _tracking_uri(tracking_uri)
    train_split = load_split(data_dir, "train", model_cfg.input_size, cfg.max_train_images)
    val_split = load_split(data_dir, "val", model_cfg.input_size)
    init_state, init_source = resolve_init(init, model_cfg, uri, Path(".hairseg/cache/registry"))
    log.info("training %s from %s on %d images", model_cfg.arch, init_source, len(train_split))

    exp_id = registry.ensure_experiment(uri)
    c = registry.client(uri)
    run = c.create_run(exp_id, run_name="train", tags={"hairseg.stage": "train"})
    run_id = run.info.run_id
    c.log_param(run_id, "init_source", init_source)
    for key, value in _flatten("", {"model": asdict(model_cfg), "train": asdict(cfg)}).items():
        c.log_param(run_id, key, str(value)[:500])

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            c.log_metric(run_id, key, value, step=epoch)

    try:
        model, result = fit(
            train_split,
            val_split,
            model_cfg,
            cfg,
            checkpoint_dir=checkpoints,
            init_state=init_state,
            init_source=init_source,
            on_epoch=on_epoch,
        )
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    save_model(model, model_cfg, out_dir / "weights.pt", out_dir / "model_config.json")
    summary = result.summary()
    c.log_metric(run_id, "best_val_iou", result.best_val_iou)
    c.log_metric(run_id, "train_seconds", result.seconds)
    c.set_terminated(run_id, "FINISHED")
    del mlflow
    _write_json(metrics_path, {**summary, "from_champion": init_source.startswith("models:/")})
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(result.history).to_csv(plot_path, index=False)
    _write_json(run_info_path, {"run_id": run_id, "tracking_uri": uri, "init_source": init_source})
    click.echo(
        f"trained {model_cfg.arch} ({init_source}): best val IoU {result.best_val_iou:.4f} "
        f"at epoch {result.best_epoch}, {result.seconds:.0f} s -> {out_dir}"
    )


@click.command("quantize")
@click.option("--data", "data_dir", type=_existing_dir, default=Path("data"), show_default=True)
@click.option("--model-dir", type=_existing_dir, default=Path("models"), show_default=True)
@_path_option("--metrics", "metrics_path", "metrics/quantize.json")
@params_option
def quantize(data_dir: Path, model_dir: Path, metrics_path: Path, params_path: Path) -> None:
    """Export MODEL_DIR/weights.pt to ONNX (fp32) and int8; pick the one to ship."""
    from hairseg.config import params_hash, section
    from hairseg.model import load_model
    from hairseg.quantize import QuantizeConfig
    from hairseg.quantize import quantize as run_quantize
    from hairseg.train import load_split

    params = _params(params_path)
    cfg = section(params, "quantize", QuantizeConfig)
    model, model_cfg = load_model(model_dir / "weights.pt", model_dir / "model_config.json")
    calib = load_split(data_dir, "train", model_cfg.input_size, cfg.calibration_images)
    val = load_split(data_dir, "val", model_cfg.input_size)
    result = run_quantize(
        model,
        model_cfg,
        model_dir,
        calib.images,
        val.images,
        val.masks,
        cfg,
        metadata={"hairseg.params_hash": params_hash(params)},
    )
    payload = result.as_dict()
    payload["int8_shipped"] = result.variant == "int8"
    _write_json(metrics_path, payload)
    click.echo(f"shipping {result.variant}: {result.reason}")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _data_md5(dvc_file: Path) -> str:
    """The md5 of the data folder as recorded in ``data.dvc`` (or 'unknown')."""
    import yaml

    if not dvc_file.is_file():
        return "unknown"
    doc = yaml.safe_load(dvc_file.read_text()) or {}
    outs = doc.get("outs") or [{}]
    return str(outs[0].get("md5", "unknown"))


@click.command("evaluate")
@click.option("--data", "data_dir", type=_existing_dir, default=Path("data"), show_default=True)
@click.option("--model-dir", type=_existing_dir, default=Path("models"), show_default=True)
@_path_option("--metrics", "metrics_path", "metrics/evaluate.json")
@click.option("--plots-dir", type=_path, default=Path("plots"), show_default=True)
@_path_option("--per-image", "per_image_path", "artifacts/eval_per_image.parquet")
@_path_option("--gallery", "gallery_dir", "reports/model_card/gallery")
@click.option(
    "--champion/--no-champion",
    default=True,
    show_default=True,
    help="Also evaluate the registered champion (when one exists).",
)
@click.option(
    "--mediapipe-dir", type=_path, default=Path(".hairseg/models/mediapipe"), show_default=True
)
@click.option(
    "--slices",
    "slices_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Feature-store slice labels (artifacts/eval_slices.parquet) for extra per-slice IoU.",
)
@params_option
@tracking_option
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
    import pandas as pd

    from hairseg import registry
    from hairseg.config import section
    from hairseg.evaluate import EvaluateConfig, evaluate_onnx, load_test_set, real_photo_report
    from hairseg.model_card import gallery_rows, render_gallery
    from hairseg.priors import PriorsConfig
    from hairseg.quantize import FP32_FILE, INT8_FILE

    params = _params(params_path)
    cfg = section(params, "evaluate", EvaluateConfig)
    # The real-photo priors, fused exactly as serving fuses them (params.yaml priors:).
    priors = section(params, "priors", PriorsConfig)
    selected = _read_json(model_dir / "selected.json", "run `hairseg quantize` first")
    test = load_test_set(data_dir, cfg.split)
    evals = {"fp32": evaluate_onnx("fp32", model_dir / FP32_FILE, test, cfg, priors=priors)}
    if (model_dir / INT8_FILE).is_file():
        evals["int8"] = evaluate_onnx("int8", model_dir / INT8_FILE, test, cfg, priors=priors)
    if priors.enabled:  # what the fusion costs or buys on the synthetic split
        evals["candidate_no_priors"] = evaluate_onnx(
            "candidate_no_priors", model_dir / selected["file"], test, cfg
        )
    notes: dict[str, str] = {}
    champion_info: dict[str, Any] = {"available": False}
    real_models = {"candidate": model_dir / selected["file"]}
    if champion:
        uri = _tracking_uri(tracking_uri)
        info = registry.get_version(uri, registry.CHAMPION)
        if info is None:
            notes["champion"] = "none registered yet"
        else:
            path = registry.fetch_onnx(
                f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}",
                Path(".hairseg/cache/registry"),
                uri,
            )
            evals["champion"] = evaluate_onnx("champion", path, test, cfg, priors=priors)
            champion_info = {"available": True, "version": info.version}
            real_models["champion"] = path
    else:
        notes["champion"] = "not evaluated (--no-champion)"
    notes.update(
        _mediapipe_baselines(evals, test, cfg, mediapipe_dir, model_dir / selected["file"])
    )

    if slices_path is not None:
        from hairseg.evaluate import attach_feature_slices

        feature_slices = pd.read_parquet(slices_path)
        for e in evals.values():
            e.per_image = attach_feature_slices(e.per_image, feature_slices)

    real_report, notes["real_photos"] = real_photo_report(
        cfg, real_models, gallery_dir, priors=priors
    )

    shipped = selected["variant"]
    candidate = evals[shipped]
    payload: dict[str, Any] = {
        "split": cfg.split,
        "n_images": len(test),
        "threshold": cfg.threshold,
        "boundary_tolerance_px": cfg.boundary_tolerance_px,
        "threads": cfg.threads,
        "shipped_variant": shipped,
        "candidate": candidate.summary(),
        "champion": {
            **champion_info,
            **(evals["champion"].summary() if "champion" in evals else {}),
        },
        "models": {name: e.summary() for name, e in evals.items()},
        "notes": notes,
    }
    if real_report is not None:
        payload["real_photos"] = real_report
    _write_json(metrics_path, payload)

    plots_dir.mkdir(parents=True, exist_ok=True)
    slices = candidate.slices()
    slices.assign(slice_value=slices["slice"] + "=" + slices["value"]).to_csv(
        plots_dir / "slice_iou.csv", index=False
    )
    sweep = pd.DataFrame({"threshold": list(candidate.iou_by_threshold)})
    for name, e in evals.items():
        if e.iou_by_threshold:
            sweep[f"{name}_iou"] = list(e.iou_by_threshold.values())
    sweep.to_csv(plots_dir / "iou_threshold.csv", index=False)
    per_image_path.parent.mkdir(parents=True, exist_ok=True)
    frames = [e.per_image.assign(model=name) for name, e in evals.items()]
    pd.concat(frames, ignore_index=True).to_parquet(per_image_path, index=False)

    rows = gallery_rows(candidate.per_image, cfg.gallery_best, cfg.gallery_worst)
    render_gallery(
        gallery_dir,
        test.images,
        test.masks,
        candidate.predictions,
        candidate.per_image,
        rows,
        cfg.gallery_shade,
    )
    summary = candidate.summary()
    click.echo(
        f"{shipped}: test IoU {summary['iou']:.4f}, Dice {summary['dice']:.4f}, boundary F1 "
        f"{summary['boundary_f1']:.4f}, p50 b1 {summary.get('latency_ms_b1_p50', float('nan')):.2f} ms"
    )
    for key, note in notes.items():
        click.echo(f"{key}: {note}")


def _mediapipe_baselines(
    evals: dict[str, Any], test: Any, cfg: Any, models_dir: Path, shipped: Path
) -> dict[str, str]:
    """MediaPipe hair segmenter baseline and the selfie person-mask post-filter."""
    from hairseg.evaluate import SelfieSegmenter, evaluate_masks, evaluate_onnx
    from hairseg.mediapipe_models import model_path

    notes: dict[str, str] = {}
    hair = model_path("hair_segmenter", models_dir)
    if hair is None:
        notes["baseline_mediapipe_hair"] = (
            f"unavailable: {models_dir}/hair_segmenter.tflite is absent (not obtainable offline; "
            "`hairseg models fetch` downloads it where storage.googleapis.com is reachable)"
        )
    else:
        with SelfieSegmenter(hair, category=1) as seg:
            preds = [seg(img) for img in tqdm_iter(test.images, "mediapipe hair")]
        evals["mediapipe_hair"] = evaluate_masks("mediapipe_hair", preds, test, cfg)
        notes["baseline_mediapipe_hair"] = f"evaluated ({hair})"
    selfie = model_path("selfie_segmenter", models_dir)
    if selfie is None:
        notes["selfie_filter"] = (
            f"unavailable: {models_dir}/selfie_segmenter.tflite is absent (`hairseg models fetch`)"
        )
    else:
        with SelfieSegmenter(selfie, category=0) as seg:
            persons = [seg(img) for img in tqdm_iter(test.images, "mediapipe selfie")]
        name = "candidate+selfie_filter"
        evals[name] = evaluate_onnx(name, shipped, test, cfg, person_masks=persons)
        notes["selfie_filter"] = (
            f"candidate IoU with the selfie person-mask filter (grown {cfg.selfie_dilate_px} px): "
            "see model 'candidate+selfie_filter'"
        )
    return notes


def tqdm_iter(items: list[Any], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


@click.command("gate")
@_path_option("--evaluation", "evaluation_path", "metrics/evaluate.json")
@click.option("--train-metrics", type=_path, default=Path("metrics/train.json"), show_default=True)
@click.option(
    "--quantize-metrics", type=_path, default=Path("metrics/quantize.json"), show_default=True
)
@click.option("--model-dir", type=_existing_dir, default=Path("models"), show_default=True)
@click.option("--plots-dir", type=_path, default=Path("plots"), show_default=True)
@_path_option("--gallery", "gallery_dir", "reports/model_card/gallery")
@_path_option("--out", "out_path", "metrics/gate.json")
@_path_option("--card", "card_path", "reports/model_card/model_card.md")
@click.option("--strict", is_flag=True, help="Exit 1 when the candidate fails the gate.")
@params_option
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
    import pandas as pd

    from hairseg.config import section
    from hairseg.gate import GateConfig, RealPhotoScores, decide
    from hairseg.model_card import write_model_card

    cfg = section(_params(params_path), "gate", GateConfig)
    evaluation = _read_json(evaluation_path, "run `hairseg evaluate` first")
    cand = evaluation["candidate"]
    if cfg.latency_metric not in cand:
        raise HairsegError(
            f"gate.latency_metric {cfg.latency_metric!r} not in {evaluation_path}; "
            f"available: {', '.join(k for k in cand if k.startswith('latency'))}",
            exit_code=EXIT_USAGE,
        )
    champ = evaluation.get("champion", {})
    real = evaluation.get("real_photos") or {}
    real_scores = {
        name: RealPhotoScores.from_summary(real[name]) if name in real else None
        for name in ("candidate", "champion")
    }
    decision = decide(
        cand["iou"],
        cand[cfg.latency_metric],
        champ.get("iou") if champ.get("available") else None,
        cfg,
        candidate_real=real_scores["candidate"],
        champion_real=real_scores["champion"],
    )
    _write_json(out_path, {**decision.as_dict(), "passed_int": int(decision.passed)})
    slices_csv = plots_dir / "slice_iou.csv"
    slices = pd.read_csv(slices_csv) if slices_csv.is_file() else pd.DataFrame()
    pngs = sorted(gallery_dir.glob("*.png")) if gallery_dir.is_dir() else []
    gallery = [p for p in pngs if not p.name.startswith("real_")]
    write_model_card(
        card_path,
        train=_read_json(train_metrics, "run `hairseg train` first"),
        quantize=_read_json(quantize_metrics, "run `hairseg quantize` first"),
        evaluation=evaluation,
        gate=decision.as_dict(),
        slices=slices,
        gallery=gallery,
        model_config=_read_json(model_dir / "model_config.json", "run `hairseg train` first"),
        real_photos={k: v for k, v in real.items() if k != "worst"} or None,
        real_gallery=[p for p in pngs if p.name.startswith("real_")],
    )
    click.echo(f"gate: {'PASS' if decision.passed else 'FAIL'} — " + "; ".join(decision.reasons))
    if strict and not decision.passed:
        raise HairsegError("candidate failed the promotion gate", exit_code=1)


@click.command("register")
@click.option("--model-dir", type=_existing_dir, default=Path("models"), show_default=True)
@_path_option("--evaluation", "evaluation_path", "metrics/evaluate.json")
@_path_option("--gate", "gate_path", "metrics/gate.json")
@_path_option("--run-info", "run_info_path", "artifacts/train_run.json")
@click.option("--card-dir", type=_path, default=Path("reports/model_card"), show_default=True)
@_path_option(
    "--data-dvc", "data_dvc", "data.dvc", help="DVC file whose md5 is the data lineage tag."
)
@click.option(
    "--pipeline-run-id",
    default="local",
    show_default=True,
    help="Pipeline run id for lineage (KFP passes its run id).",
)
@_path_option("--out", "out_path", "metrics/register.json")
@click.option(
    "--no-bootstrap",
    is_flag=True,
    help="Never make this version champion (overrides register.bootstrap_champion).",
)
@params_option
@tracking_option
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
    from hairseg.config import params_hash, section

    uri = _tracking_uri(tracking_uri)
    params = _params(params_path)
    cfg = section(params, "register", registry.RegisterConfig)
    evaluation = _read_json(evaluation_path, "run `hairseg evaluate` first")
    decision = _read_json(gate_path, "run `hairseg gate` first")
    run_info = (
        _read_json(run_info_path, "run `hairseg train` first") if run_info_path.is_file() else {}
    )
    metrics = {
        f"test_{k}": float(v)
        for k, v in evaluation["candidate"].items()
        if isinstance(v, int | float)
    }
    lineage = {
        "git_commit": _git_commit(),
        "data_md5": _data_md5(data_dvc),
        "params_hash": params_hash(params),
        "pipeline_run_id": pipeline_run_id,
        "init_source": run_info.get("init_source", "unknown"),
    }
    result = registry.register_model(
        model_dir,
        tracking_uri=uri,
        metrics=metrics,
        gate_passed=bool(decision["passed"]),
        gate_reasons=list(decision.get("reasons", [])),
        lineage=lineage,
        run_id=run_info.get("run_id") if run_info.get("tracking_uri") == uri else None,
        extra_artifacts=[p for p in (card_dir, evaluation_path, gate_path) if p.exists()],
        bootstrap_champion=cfg.bootstrap_champion and not no_bootstrap,
    )
    _write_json(out_path, {**result.as_dict(), "gate_passed": bool(decision["passed"])})
    aliases = ", ".join(result.aliases) or "none (gate failed)"
    click.echo(f"registered {registry.MODEL_NAME} v{result.version}; aliases: {aliases}")
