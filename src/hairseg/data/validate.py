"""The dataset validation gate: Great Expectations over the per-image statistics table.

``hairseg data validate DATASET`` computes :func:`hairseg.data.stats.compute_image_stats`
(plus near-duplicate / leakage columns), validates it with an expectation suite whose
thresholds come from ``params.yaml`` (section ``validate``), and writes

- ``<reports>/result.json``: the failed checks with offending ids, and GX's own result;
- ``<reports>/data_docs/``: GX Data Docs HTML (``index.html``);
- the statistics table (``artifacts/image_stats.parquet``: Feast's ``image_stats_v1``);
- a small metrics JSON for DVC.

The dataset is only read. Each expectation carries a human ``check`` name in its
``meta``, which is what the failure list shows (e.g. ``leakage across splits``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from hairseg.data.manifest import SPLITS
from hairseg.data.stats import FaceCounter, add_duplicate_columns, compute_image_stats
from hairseg.jsonio import write_json_atomic

# GX logs its import and every store write at INFO; only its warnings are worth a line.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

__all__ = [
    "Failure",
    "ValidateParams",
    "ValidationReport",
    "build_expectations",
    "validate_dataset",
]


@dataclass(frozen=True)
class ValidateParams:
    """``params.yaml`` section ``validate``: the gate's thresholds."""

    min_side: int = 64  # pixels, both width and height
    max_side: int = 4096
    coverage_min: float = 0.0  # hair fraction of an image
    coverage_max: float = 0.85
    brightness_min: float = 0.03  # mean luma in [0, 1]; outside = black/blown-out frame
    brightness_max: float = 0.97
    contrast_min: float = 0.02  # std of luma; below = a flat frame
    phash_max_distance: int = 24  # of 256 pHash bits: closer images are near-duplicates
    max_duplicate_fraction: float = 0.0  # near-duplicates allowed within a split
    face_count_min: int = 1
    face_count_max: int = 3
    face_mostly: float = 0.9  # fraction of images whose face count must be in range
    face_min_confidence: float = 0.5
    # Splits that must be non-empty: all three for a training dataset; an evaluation-only
    # set (datasets/real_portraits: split test) validates with ("test",).
    required_splits: tuple[str, ...] = SPLITS


@dataclass(frozen=True)
class Failure:
    check: str
    expectation: str
    column: str | None
    count: int
    ids: list[str]

    def line(self, max_ids: int = 10) -> str:
        """``check [column]: N image(s): id, id, …`` (or the expectation when no ids)."""
        head = f"{self.check} [{self.column}]" if self.column else self.check
        if not self.ids:
            return f"{head}: {self.expectation}"
        shown = ", ".join(self.ids[:max_ids]) + (" …" if len(self.ids) > max_ids else "")
        return f"{head}: {self.count} image(s): {shown}"


@dataclass
class ValidationReport:
    success: bool
    failures: list[Failure]
    n_images: int
    n_expectations: int
    stats: pd.DataFrame
    notices: list[str] = field(default_factory=list)
    result_json: Path | None = None
    data_docs: Path | None = None

    def metrics(self) -> dict[str, object]:
        """Deterministic numbers for DVC (no timestamps)."""
        df = self.stats
        counts = df["split"].value_counts()
        faces = df["face_count"].dropna()
        return {
            "success": self.success,
            "n_images": self.n_images,
            "n_expectations": self.n_expectations,
            "n_failed_expectations": len(self.failures),
            "split_counts": {s: int(counts.get(s, 0)) for s in SPLITS},
            "decode_failures": int((~df["decodes"]).sum()),
            "non_binary_masks": int((df["mask_binary"] == False).sum()),  # noqa: E712
            "leaking_images": int(df["leaks_with"].notna().sum()),
            "near_duplicates": int(df["duplicate_of"].notna().sum()),
            "hair_coverage_mean": _round(df["hair_coverage"].mean()),
            "brightness_mean": _round(df["brightness"].mean()),
            "face_detected_fraction": _round((faces >= 1).mean()) if len(faces) else None,
        }


def _round(value: object) -> float | None:
    return None if pd.isna(value) else round(float(value), 6)


def build_expectations(params: ValidateParams, *, with_faces: bool) -> list:
    """The expectation suite's contents; ``meta['check']`` names each check for people."""
    import great_expectations.expectations as gxe

    def check(name: str) -> dict[str, str]:
        return {"check": name}

    true = [True]
    out = [
        gxe.ExpectColumnValuesToBeUnique(column="image_id", meta=check("unique ids")),
        gxe.ExpectColumnValuesToBeInSet(
            column="decodes", value_set=true, meta=check("corrupt image")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mask_decodes", value_set=true, meta=check("mask missing or unreadable")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mask_binary", value_set=true, meta=check("non-binary mask")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="mask_matches_size", value_set=true, meta=check("mask wrong size")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="manifest_size_matches", value_set=true, meta=check("manifest size mismatch")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), meta=check("unknown split")
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="split", value_set=list(params.required_splits), meta=check("empty split")
        ),
        gxe.ExpectColumnValuesToBeNull(column="leaks_with", meta=check("leakage across splits")),
        gxe.ExpectColumnValuesToBeNull(
            column="duplicate_of",
            mostly=1.0 - params.max_duplicate_fraction,
            meta=check("duplicate within split"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="hair_coverage",
            min_value=params.coverage_min,
            max_value=params.coverage_max,
            meta=check("coverage out of range"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="brightness",
            min_value=params.brightness_min,
            max_value=params.brightness_max,
            meta=check("exposure out of range"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="contrast", min_value=params.contrast_min, meta=check("flat image")
        ),
    ]
    for column in ("width", "height"):
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=params.min_side,
                max_value=params.max_side,
                meta=check("image size out of range"),
            )
        )
    if with_faces:
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="face_count",
                min_value=params.face_count_min,
                max_value=params.face_count_max,
                mostly=params.face_mostly,
                meta=check("face count out of range"),
            )
        )
    return out


def _gx_frame(stats: pd.DataFrame) -> pd.DataFrame:
    """GX's pandas engine wants plain object/float columns, not pandas' nullable dtypes."""
    frame = stats.drop(columns=["event_timestamp"]).copy()
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.StringDtype):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif str(dtype) in ("Int64", "Float64"):
            frame[column] = frame[column].astype("float64")
        elif str(dtype) == "boolean":  # nullable: not applicable (e.g. image did not decode)
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _run_gx(frame: pd.DataFrame, expectations: list, workdir: Path) -> dict:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(workdir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("dataset").add_dataframe_asset("image_stats")
    batch = asset.add_batch_definition_whole_dataframe("all_images")
    suite = context.suites.add(gx.ExpectationSuite(name="hairseg_dataset"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="hairseg_dataset", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="hairseg_dataset",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["image_id"],
            },
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = result.run_results.values()
    site = Path(context.get_docs_sites_urls()[0]["site_url"].removeprefix("file://")).parent
    return {"validation": validation, "site": site}


def _failures(validation) -> list[Failure]:
    failures = []
    for res in validation.results:
        if res.success:
            continue
        cfg = res.expectation_config
        raw = res.result or {}
        ids = sorted({str(row["image_id"]) for row in raw.get("unexpected_index_list") or []})
        expectation = cfg.type
        if cfg.type == "expect_column_distinct_values_to_contain_set":
            missing = sorted(set(cfg.kwargs["value_set"]) - set(raw.get("observed_value") or []))
            expectation = f"no images in split(s) {', '.join(missing)}"
        failures.append(
            Failure(
                check=(cfg.meta or {}).get("check", cfg.type),
                expectation=expectation,
                column=cfg.kwargs.get("column"),
                count=int(raw.get("unexpected_count") or len(ids)),
                ids=ids,
            )
        )
    return failures


def validate_dataset(
    dataset_dir: str | Path,
    params: ValidateParams,
    *,
    reports_dir: str | Path | None = None,
    face_counter: FaceCounter | None = None,
    progress: bool = False,
    notice: Callable[[str], None] = lambda _msg: None,
) -> ValidationReport:
    """Validate a dataset folder; ``reports_dir`` receives result.json and Data Docs."""
    notices = []
    if face_counter is None:
        notices.append("face_count left null: no face detector (run `hairseg models fetch`)")
        notice(notices[-1])
    stats = compute_image_stats(dataset_dir, face_counter=face_counter, progress=progress)
    stats = add_duplicate_columns(stats, params.phash_max_distance)
    expectations = build_expectations(params, with_faces=face_counter is not None)
    with tempfile.TemporaryDirectory(prefix="hairseg-gx-") as tmp:
        out = _run_gx(_gx_frame(stats), expectations, Path(tmp))
        validation = out["validation"]
        failures = _failures(validation)
        report = ValidationReport(
            success=bool(validation.success),
            failures=failures,
            n_images=len(stats),
            n_expectations=len(expectations),
            stats=stats,
            notices=notices,
        )
        if reports_dir is not None:
            reports = Path(reports_dir)
            reports.mkdir(parents=True, exist_ok=True)
            docs = reports / "data_docs"
            staging = reports / ".data_docs.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(out["site"], staging)
            shutil.rmtree(docs, ignore_errors=True)
            staging.rename(docs)
            payload = {
                "success": report.success,
                "dataset": str(dataset_dir),
                "params": asdict(params),
                "failures": [asdict(f) for f in failures],
                "notices": notices,
                "metrics": report.metrics(),
                "great_expectations": validation.to_json_dict(),
            }
            write_json_atomic(reports / "result.json", payload)
            report.result_json = reports / "result.json"
            report.data_docs = docs / "index.html"
    return report
