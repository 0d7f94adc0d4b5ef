"""The data stages: ``validate`` (the Great Expectations gate over a dataset folder) and
``pseudo_label_folder`` (unlabelled portraits into a dataset, on the batch path: it sits
above both ``hairseg.data`` and ``hairseg.batch``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.stages.files import write_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from hairseg.data.pseudo_label import PseudoLabelConfig, PseudoLabelResult, Skipped
    from hairseg.data.validate import ValidateParams
    from hairseg.priors import PriorsConfig

__all__ = [
    "ValidateResult",
    "pseudo_label_folder",
    "pseudo_label_unavailable",
    "validate_stage",
    "write_unavailable",
]


@dataclass
class ValidateResult:
    """The gate's outcome; files are written whether it passed or not."""

    dataset: Path
    success: bool
    n_images: int
    n_expectations: int
    failures: list[str]
    failed_checks: list[str]
    result_json: Path
    data_docs: Path
    metrics: dict[str, Any] = field(repr=False)
    notice: str | None = None

    def raise_if_failed(self) -> None:
        """A :class:`HairsegError` naming the failed checks when the gate failed."""
        if not self.success:
            raise HairsegError(
                f"dataset {self.dataset} failed {len(self.failures)} of {self.n_expectations} "
                f"checks ({', '.join(self.failed_checks)}); see {self.result_json}"
            )


def validate_stage(
    dataset: Path,
    cfg: ValidateParams,
    *,
    reports_dir: Path,
    stats_out: Path,
    metrics_out: Path,
    models_dir: Path,
    faces: bool = True,
) -> ValidateResult:
    """Validate ``dataset``; write the per-image statistics (``stats_out``, parquet: the
    Feast ``image_stats_v1`` source and the drift reference), the summary for
    ``dvc metrics`` and the Data Docs under ``reports_dir``. Faces are counted with the
    MediaPipe detector in ``models_dir`` when it is there (else ``notice`` says so)."""
    from contextlib import ExitStack

    from hairseg.data.stats import write_stats
    from hairseg.data.validate import validate_dataset
    from hairseg.mediapipe_models import FaceDetector, model_path

    if not dataset.is_dir():
        raise HairsegError(f"dataset folder not found: {dataset}", exit_code=EXIT_USAGE)
    notice = None
    with ExitStack() as stack:
        counter = None
        model = model_path("face_detector", models_dir) if faces else None
        if model is not None:
            counter = stack.enter_context(
                FaceDetector(model, min_confidence=cfg.face_min_confidence)
            )
        elif faces:
            notice = f"no MediaPipe face detector in {models_dir}; run `hairseg models fetch`"
        report = validate_dataset(
            dataset, cfg, reports_dir=reports_dir, face_counter=counter, progress=True
        )
    write_stats(report.stats, stats_out)
    metrics = report.metrics()
    write_json(metrics_out, metrics)
    return ValidateResult(
        dataset=dataset,
        success=bool(report.success),
        n_images=report.n_images,
        n_expectations=report.n_expectations,
        failures=[f.line() for f in report.failures],
        failed_checks=sorted({f.check for f in report.failures}),
        result_json=Path(report.result_json),
        data_docs=Path(report.data_docs),
        metrics=metrics,
        notice=notice,
    )


def pseudo_label_unavailable(src: str | Path, priors: PriorsConfig) -> str:
    """Why ``src`` cannot be pseudo-labelled here ("" when it can): a dataset whose images
    are all absent (the pool's licences keep them out of git), or no MediaPipe face
    detector (the teacher's one required prior)."""
    from hairseg.data.manifest import MANIFEST_NAME, read_manifest
    from hairseg.data.real_portraits import missing_images
    from hairseg.mediapipe_models import model_path

    src = Path(src)
    if (src / MANIFEST_NAME).is_file():
        missing = missing_images(src)
        if missing and len(missing) == len(read_manifest(src)):
            return (
                f"the {len(missing)} images of {src} are absent "
                "(`python tools/fetch_real_portraits.py --only pool` re-derives them)"
            )
    if model_path("face_detector", priors.models_dir) is None:
        return f"no MediaPipe face detector in {priors.models_dir} (`hairseg models fetch`)"
    return ""


def write_unavailable(dest: str | Path, reason: str) -> Path:
    """Replace ``dest`` by a folder holding only :data:`UNAVAILABLE_NAME` with ``reason``."""
    import json
    import shutil

    from hairseg.data.pseudo_label import UNAVAILABLE_NAME

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    path = dest / UNAVAILABLE_NAME
    path.write_text(json.dumps({"reason": reason}, indent=1) + "\n")
    return path


def pseudo_label_folder(
    src: str | Path,
    dest: str | Path,
    cfg: PseudoLabelConfig,
    *,
    priors: PriorsConfig,
    model: str | Path | None = None,
    overwrite: bool = False,
    split: str = "train",
    batch: object | None = None,
    on_skip: Callable[[Skipped], None] = lambda _s: None,
) -> PseudoLabelResult:
    """Label every portrait in ``src`` into the dataset folder ``dest``, on the batch path.

    The teacher runs in :func:`hairseg.batch.run_batch`'s worker processes (``batch``: a
    :class:`~hairseg.batch.BatchConfig`, workers and flushing), so the run is resumable
    (rerun it after a crash: finished images are kept) and a bad file is a row. Non-images,
    undecodable files, photos without a face and low-confidence labels are skipped, each
    with a reason (``on_skip``); an empty result is an error and leaves no ``dest``. A
    finished dataset in ``dest`` (a manifest) is replaced only with ``overwrite``.
    """
    import shutil

    from hairseg.batch import BatchConfig, InputItem, read_results, run_batch
    from hairseg.data.manifest import MANIFEST_NAME
    from hairseg.data.pseudo_label import (
        FOLDER_LICENCE,
        PseudoLabelResult,
        Skipped,
        TeacherSpec,
        _images_in,
        _skip_reason,
    )

    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise HairsegError(f"pseudo-label: source folder not found: {src}", exit_code=EXIT_USAGE)
    resumable = (dest / ".batch").is_dir() and not (dest / MANIFEST_NAME).is_file()
    if dest.exists() and any(dest.iterdir()) and not resumable:
        if not overwrite:
            raise HairsegError(
                f"pseudo-label: {dest} is not empty (pass --overwrite to replace it)",
                exit_code=EXIT_USAGE,
            )
        shutil.rmtree(dest)
    existed = dest.exists()
    items, licences = [], {}
    for ident, path, extras in _images_in(src):
        items.append(InputItem(ident, str(path)))
        licences[ident] = extras.get("licence", FOLDER_LICENCE)
    spec = TeacherSpec(cfg, priors, None if model is None else str(model))
    summary = run_batch(
        items,
        dest,
        spec.model_path,
        batch if isinstance(batch, BatchConfig) else BatchConfig(),
        teacher=spec,
        licence=FOLDER_LICENCE,
        licences=licences,
        split=split,
    )
    df = read_results(dest)
    df = df[df["id"].isin(licences)]
    skipped = [
        Skipped(str(row.uri), _skip_reason(str(row.status), str(row.error)))
        for row in df[df["status"] != "ok"].itertuples(index=False)
    ]
    for item in skipped:
        on_skip(item)
    if not summary.n_ok:
        if not existed:
            shutil.rmtree(dest, ignore_errors=True)
        raise HairsegError(
            f"pseudo-label: no image in {src} could be labelled ({len(skipped)} skipped)",
            exit_code=EXIT_USAGE,
        )
    ok = df[df["status"] == "ok"]
    return PseudoLabelResult(
        path=dest,
        n_labelled=len(ok),
        skipped=skipped,
        mean_confidence=float(ok["confidence"].mean()),
    )
