"""The data stage ``validate``: the Great Expectations gate over a dataset folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.stages.files import write_json

if TYPE_CHECKING:
    from hairseg.data.validate import ValidateParams

__all__ = ["ValidateResult", "validate_stage"]


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
