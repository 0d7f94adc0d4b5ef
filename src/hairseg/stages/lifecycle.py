"""The model-lifecycle stages: train → quantize → evaluate → gate → register.

Each function is one DVC stage and one KFP component: it takes paths, typed configs and
the MLflow tracking URI, writes the stage's files (models, metrics JSON for
``dvc metrics``, CSV for ``dvc plots``, the model card) and returns a result dataclass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.stages.files import flatten, read_json, write_json

if TYPE_CHECKING:
    from hairseg.evaluate import EvaluateConfig
    from hairseg.gate import GateConfig
    from hairseg.model import ModelConfig
    from hairseg.priors import PriorsConfig
    from hairseg.quantize import QuantizeConfig
    from hairseg.registry import RegisterConfig
    from hairseg.train import PseudoTrainConfig, Split, TrainConfig

__all__ = [
    "EvaluateResult",
    "GateResult",
    "PseudoSet",
    "QuantizeResult",
    "RegisterResult",
    "TrainResult",
    "evaluate_stage",
    "gate_stage",
    "pseudo_training_set",
    "quantize_stage",
    "register_stage",
    "resolve_init",
    "train_stage",
]

log = logging.getLogger("hairseg.lifecycle")

# OpenMP threads that spin while waiting burn the CPU another process needs: on a shared
# 2-core box one training step then costs ~10x the CPU. libgomp reads this when torch loads
# it, and torch is imported only inside the stages below, so this still takes effect.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Where registry downloads (champion weights, ONNX) are cached, relative to the cwd.
REGISTRY_CACHE = Path(".hairseg/cache/registry")


def resolve_init(
    init: str, model_cfg: ModelConfig, tracking_uri: str, cache: Path
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


@dataclass
class TrainResult:
    """What :func:`train_stage` wrote: the model folder and the MLflow run."""

    model_dir: Path
    run_id: str
    tracking_uri: str
    init_source: str
    arch: str
    input_size: int
    summary: dict[str, Any]

    @property
    def from_champion(self) -> bool:
        return self.init_source.startswith("models:/")


def train_stage(
    data_dir: Path,
    out_dir: Path,
    *,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    tracking_uri: str,
    metrics_path: Path,
    plot_path: Path,
    run_info_path: Path,
    checkpoints: Path,
    init: str | None = None,
    cache_dir: Path = REGISTRY_CACHE,
) -> TrainResult:
    """Fine-tune on ``data_dir``'s train split (early stopping on val) in an MLflow run.

    ``init`` overrides ``train_cfg.init``. Writes ``out_dir/weights.pt`` +
    ``model_config.json``, the summary (``metrics_path``), the learning curve
    (``plot_path``, CSV) and the run's id and init source (``run_info_path``).
    """
    import pandas as pd

    from hairseg import registry
    from hairseg.model import save_model
    from hairseg.train import fit, load_split

    init = init or train_cfg.init
    train_split = load_split(data_dir, "train", model_cfg.input_size, train_cfg.max_train_images)
    val_split = load_split(data_dir, "val", model_cfg.input_size)
    init_state, init_source = resolve_init(init, model_cfg, tracking_uri, cache_dir)
    log.info("training %s from %s on %d images", model_cfg.arch, init_source, len(train_split))

    exp_id = registry.ensure_experiment(tracking_uri)
    c = registry.client(tracking_uri)
    run = c.create_run(exp_id, run_name="train", tags={"hairseg.stage": "train"})
    run_id = run.info.run_id
    c.log_param(run_id, "init_source", init_source)
    for key, value in flatten("", {"model": asdict(model_cfg), "train": asdict(train_cfg)}).items():
        c.log_param(run_id, key, str(value)[:500])

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            c.log_metric(run_id, key, value, step=epoch)

    try:
        model, result = fit(
            train_split,
            val_split,
            model_cfg,
            train_cfg,
            checkpoint_dir=checkpoints,
            init_state=init_state,
            init_source=init_source,
            on_epoch=on_epoch,
        )
        pseudo = pseudo_training_set(train_cfg.pseudo, model_cfg.input_size)
        summary, history = result.summary(), list(result.history)
        if pseudo.split is not None:
            n = result.epochs_run
            model, tuned = _fit_on_pseudo(
                model, pseudo.split, train_split, val_split, model_cfg, train_cfg, checkpoints,
                init_source, lambda e, m: on_epoch(n + e, m),
            )  # fmt: skip
            history += [{**h, "epoch": h["epoch"] + n} for h in tuned.history]
            summary = {
                **tuned.summary(),
                "init_source": init_source,
                "seconds": result.seconds + tuned.seconds,
                "synthetic_best_val_iou": result.best_val_iou,
                "synthetic_epochs_run": n,
            }
        summary.update(pseudo.summary())
        for key, value in pseudo.summary().items():
            c.log_param(run_id, key, str(value)[:500])
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    save_model(model, model_cfg, out_dir / "weights.pt", out_dir / "model_config.json")
    c.log_metric(run_id, "best_val_iou", summary["best_val_iou"])
    c.log_metric(run_id, "train_seconds", summary["seconds"])
    c.set_terminated(run_id, "FINISHED")
    out = TrainResult(
        model_dir=out_dir,
        run_id=run_id,
        tracking_uri=tracking_uri,
        init_source=init_source,
        arch=model_cfg.arch,
        input_size=model_cfg.input_size,
        summary={**summary, "from_champion": init_source.startswith("models:/")},
    )
    write_json(metrics_path, out.summary)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(history).to_csv(plot_path, index=False)
    write_json(
        run_info_path,
        {
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "init_source": init_source,
            "pseudo_data_md5": pseudo.md5,
        },
    )
    return out


@dataclass
class PseudoSet:
    """The pseudo-labelled real photos ``train.pseudo`` fine-tunes on, or why there are none."""

    data: str
    split: Split | None = None
    md5: str = "none"  # DVC's directory hash of the set used; "none" when unused
    note: str = ""

    def summary(self) -> dict[str, Any]:
        n = 0 if self.split is None else len(self.split)
        return {"pseudo_images": n, "pseudo_data_md5": self.md5, "pseudo_note": self.note}


def pseudo_training_set(cfg: PseudoTrainConfig, size: int) -> PseudoSet:
    """Load ``cfg.data`` (a ``hairseg data pseudo-label`` output) for fine-tuning.

    Off (``data: ""``) or unavailable (no folder, or the folder the ``--skip-unavailable``
    pseudo-label run wrote when the pool's images or the face detector were absent): one
    warning line, and training carries on with the synthetic data only. The lineage then
    says ``pseudo_data_md5: none``.
    """
    from hairseg.data.ensure import dvc_dir_hash
    from hairseg.data.manifest import MANIFEST_NAME
    from hairseg.data.pseudo_label import UNAVAILABLE_NAME
    from hairseg.train import load_split

    if not cfg.data:
        return PseudoSet("", note="off (train.pseudo.data is empty)")
    folder = Path(cfg.data)
    if not (folder / MANIFEST_NAME).is_file():
        why = folder / UNAVAILABLE_NAME
        reason = (
            json.loads(why.read_text()).get("reason", "")
            if why.is_file()
            else f"{folder} is not a dataset"
        )
        note = f"unavailable: {reason}"
        log.warning("train.pseudo: %s; fine-tuning on synthetic data only", note)
        return PseudoSet(cfg.data, note=note)
    split = load_split(folder, "train", size)
    return PseudoSet(cfg.data, split, dvc_dir_hash(folder)[0], f"{len(split)} images")


def _fit_on_pseudo(
    model: Any,
    pseudo: Split,
    train_split: Split,
    val_split: Split,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    checkpoints: Path,
    init_source: str,
    on_epoch: Any,
) -> tuple[Any, Any]:
    """The second phase: synthetic train + ``repeat`` x pseudo, from the first phase's
    weights, at ``train.pseudo.lr`` for ``train.pseudo.epochs`` (the best epoch on the
    synthetic val split is kept)."""
    from hairseg.train import Split, fit

    p = train_cfg.pseudo
    cfg = dataclasses.replace(train_cfg, epochs=p.epochs, patience=p.epochs, lr=p.lr)
    log.info("fine-tuning on %d pseudo-labelled images x %d", len(pseudo), p.repeat)
    return fit(
        Split.concat(train_split, *([pseudo] * p.repeat)),
        val_split,
        model_cfg,
        cfg,
        checkpoint_dir=checkpoints / "pseudo",
        init_state=model.state_dict(),
        init_source=f"{init_source} + synthetic epochs",
        on_epoch=on_epoch,
    )


@dataclass
class QuantizeResult:
    """The variant that ships and the quantize metrics (``metrics/quantize.json``)."""

    variant: str
    file: str
    reason: str
    params_hash: str
    metrics: dict[str, Any]


def quantize_stage(
    data_dir: Path,
    model_dir: Path,
    *,
    train_cfg: TrainConfig,
    quantize_cfg: QuantizeConfig,
    metrics_path: Path,
) -> QuantizeResult:
    """Export ``model_dir/weights.pt`` to ONNX fp32 and int8 (into ``model_dir``) and pick
    the variant to ship; the ONNX files carry ``hairseg.params_hash``
    (:func:`hairseg.lineage.params_hash` of the model's own config, ``train_cfg`` and
    ``quantize_cfg``)."""
    from hairseg import lineage
    from hairseg.model import load_model
    from hairseg.quantize import quantize as run_quantize
    from hairseg.train import load_split

    model, model_cfg = load_model(model_dir / "weights.pt", model_dir / "model_config.json")
    phash = lineage.params_hash(model_cfg, train_cfg, quantize_cfg)
    calib = load_split(data_dir, "train", model_cfg.input_size, quantize_cfg.calibration_images)
    val = load_split(data_dir, "val", model_cfg.input_size)
    result = run_quantize(
        model,
        model_cfg,
        model_dir,
        calib.images,
        val.images,
        val.masks,
        quantize_cfg,
        metadata={"hairseg.params_hash": phash},
    )
    payload = result.as_dict()
    payload["int8_shipped"] = result.variant == "int8"
    write_json(metrics_path, payload)
    selected = read_json(model_dir / "selected.json", "quantize wrote no selected.json")
    return QuantizeResult(result.variant, selected["file"], result.reason, phash, payload)


@dataclass
class EvaluateResult:
    """The evaluation written to ``metrics/evaluate.json`` (``payload``), summarised."""

    shipped: str
    candidate: dict[str, Any]
    notes: dict[str, str]
    payload: dict[str, Any] = field(repr=False)

    @property
    def champion(self) -> dict[str, Any]:
        return self.payload.get("champion") or {}


def evaluate_stage(
    data_dir: Path,
    model_dir: Path,
    *,
    cfg: EvaluateConfig,
    priors: PriorsConfig,
    tracking_uri: str | None,
    metrics_path: Path,
    plots_dir: Path,
    per_image_path: Path,
    gallery_dir: Path,
    mediapipe_dir: Path,
    slices_path: Path | None = None,
    cache_dir: Path = REGISTRY_CACHE,
) -> EvaluateResult:
    """Evaluate fp32, int8, the champion (``tracking_uri`` given and a champion registered)
    and the MediaPipe baselines on the test split; the real photos with ``priors`` fused as
    serving fuses them; write the metrics, plots, per-image table and gallery."""
    import pandas as pd

    from hairseg import registry
    from hairseg.evaluate import evaluate_onnx, load_test_set, real_photo_report
    from hairseg.model_card import gallery_rows, render_gallery
    from hairseg.quantize import FP32_FILE, INT8_FILE

    selected = read_json(model_dir / "selected.json", "run `hairseg quantize` first")
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
    if tracking_uri is not None:
        info = registry.get_version(tracking_uri, registry.CHAMPION)
        if info is None:
            notes["champion"] = "none registered yet"
        else:
            path = registry.fetch_onnx(
                f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}", cache_dir, tracking_uri
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
    write_json(metrics_path, payload)

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
    return EvaluateResult(shipped, candidate.summary(), notes, payload)


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
            preds = [seg(img) for img in _progress(test.images, "mediapipe hair")]
        evals["mediapipe_hair"] = evaluate_masks("mediapipe_hair", preds, test, cfg)
        notes["baseline_mediapipe_hair"] = f"evaluated ({hair})"
    selfie = model_path("selfie_segmenter", models_dir)
    if selfie is None:
        notes["selfie_filter"] = (
            f"unavailable: {models_dir}/selfie_segmenter.tflite is absent (`hairseg models fetch`)"
        )
    else:
        with SelfieSegmenter(selfie, category=0) as seg:
            persons = [seg(img) for img in _progress(test.images, "mediapipe selfie")]
        name = "candidate+selfie_filter"
        evals[name] = evaluate_onnx(name, shipped, test, cfg, person_masks=persons)
        notes["selfie_filter"] = (
            f"candidate IoU with the selfie person-mask filter (grown {cfg.selfie_dilate_px} px): "
            "see model 'candidate+selfie_filter'"
        )
    return notes


def _progress(items: list[Any], desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


@dataclass
class GateResult:
    """The promotion decision (``metrics/gate.json``) and where the model card went."""

    passed: bool
    reasons: list[str]
    decision: dict[str, Any]
    card_path: Path


def gate_stage(
    evaluation_path: Path,
    *,
    cfg: GateConfig,
    train_metrics: Path,
    quantize_metrics: Path,
    model_dir: Path,
    plots_dir: Path,
    gallery_dir: Path,
    out_path: Path,
    card_path: Path,
) -> GateResult:
    """Decide whether the candidate may be promoted; write the decision and the model card."""
    import pandas as pd

    from hairseg.gate import RealPhotoScores, decide
    from hairseg.model_card import write_model_card

    evaluation = read_json(evaluation_path, "run `hairseg evaluate` first")
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
    payload = {**decision.as_dict(), "passed_int": int(decision.passed)}
    write_json(out_path, payload)
    slices_csv = plots_dir / "slice_iou.csv"
    slices = pd.read_csv(slices_csv) if slices_csv.is_file() else pd.DataFrame()
    pngs = sorted(gallery_dir.glob("*.png")) if gallery_dir.is_dir() else []
    gallery = [p for p in pngs if not p.name.startswith("real_")]
    write_model_card(
        card_path,
        train=read_json(train_metrics, "run `hairseg train` first"),
        quantize=read_json(quantize_metrics, "run `hairseg quantize` first"),
        evaluation=evaluation,
        gate=decision.as_dict(),
        slices=slices,
        gallery=gallery,
        model_config=read_json(model_dir / "model_config.json", "run `hairseg train` first"),
        real_photos={k: v for k, v in real.items() if k != "worst"} or None,
        real_gallery=[p for p in pngs if p.name.startswith("real_")],
    )
    return GateResult(bool(decision.passed), list(decision.reasons), payload, card_path)


@dataclass
class RegisterResult:
    """The registered version (``metrics/register.json`` is ``payload``)."""

    version: int
    model_uri: str
    aliases: list[str]
    tags: dict[str, str]
    payload: dict[str, Any] = field(repr=False)


def register_stage(
    model_dir: Path,
    *,
    cfg: RegisterConfig,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    quantize_cfg: QuantizeConfig,
    tracking_uri: str,
    evaluation_path: Path,
    gate_path: Path,
    run_info_path: Path,
    card_dir: Path,
    out_path: Path,
    pipeline_run_id: str,
    data_dir: Path | None = None,
    data_dvc: Path | None = None,
    git_commit: str | None = None,
    extra_lineage: dict[str, str] | None = None,
    bootstrap: bool = True,
) -> RegisterResult:
    """Register the shipped model as a new version of MLflow model ``hairseg`` (alias
    candidate; champion on bootstrap) tagged with :func:`hairseg.lineage.collect`.

    The data hash is ``data_dvc``'s when that file exists, else ``data_dir``'s (see
    :func:`hairseg.lineage.data_md5`); ``bootstrap=False`` never makes it champion.
    """
    from hairseg import lineage, registry

    evaluation = read_json(evaluation_path, "run `hairseg evaluate` first")
    decision = read_json(gate_path, "run `hairseg gate` first")
    run_info = (
        read_json(run_info_path, "run `hairseg train` first") if run_info_path.is_file() else {}
    )
    metrics = {
        f"test_{k}": float(v)
        for k, v in evaluation["candidate"].items()
        if isinstance(v, int | float)
    }
    tags = lineage.collect(
        lineage.params_hash(model_cfg, train_cfg, quantize_cfg),
        pipeline_run_id=pipeline_run_id,
        init_source=run_info.get("init_source", lineage.UNKNOWN),
        data_dir=data_dir,
        dvc_file=data_dvc,
        commit=git_commit,
        pseudo_data_md5=run_info.get("pseudo_data_md5", "none"),
        extra=extra_lineage,
    )
    result = registry.register_model(
        model_dir,
        tracking_uri=tracking_uri,
        metrics=metrics,
        gate_passed=bool(decision["passed"]),
        gate_reasons=list(decision.get("reasons", [])),
        lineage=tags,
        run_id=run_info.get("run_id") if run_info.get("tracking_uri") == tracking_uri else None,
        extra_artifacts=[p for p in (card_dir, evaluation_path, gate_path) if p.exists()],
        bootstrap_champion=cfg.bootstrap_champion and bootstrap,
    )
    payload = {**result.as_dict(), "gate_passed": bool(decision["passed"])}
    write_json(out_path, payload)
    return RegisterResult(
        result.version, result.model_uri, list(result.aliases), dict(result.tags), payload
    )
