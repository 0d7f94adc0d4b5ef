"""The drift check: training image statistics (reference) vs inference statistics (current).

Both sides hold :class:`hairseg.imaging.ImageStats` columns computed by the same function,
so the comparison is like with like. Evidently's ``DataDriftPreset`` builds the report
(HTML + JSON); each column's verdict comes from the same Evidently stat test with the
threshold from ``params.yaml``, and the dataset counts as drifted when the share of drifted
columns reaches ``monitor.drift_share``. Schedulers act on :data:`EXIT_DRIFT`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hairseg.config import require
from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.monitoring.inference_log import STAT_FIELDS

__all__ = [
    "DEFAULT_DRIFT_COLUMNS",
    "EXIT_DRIFT",
    "ColumnDrift",
    "DriftResult",
    "MonitorConfig",
    "check_drift",
    "load_current",
    "load_reference",
]

log = logging.getLogger(__name__)

# Exit code of `hairseg monitor drift` when drift is detected (0: none, 1: failure,
# 2: bad input). A scheduler triggers retraining on it.
EXIT_DRIFT = 3

# The logged image statistics but the size (which says nothing about the content).
DEFAULT_DRIFT_COLUMNS: tuple[str, ...] = tuple(
    name for name in STAT_FIELDS if name not in ("width", "height")
)

REPORT_HTML = "drift_report.html"
REPORT_JSON = "drift_report.json"


@dataclass(frozen=True)
class MonitorConfig:
    """``params.yaml`` section ``monitor``."""

    columns: tuple[str, ...] = DEFAULT_DRIFT_COLUMNS
    drift_share: float = 0.3  # dataset drift when share of drifted columns >= this
    stattest: str = "ks"  # any Evidently numerical stat test: ks, wasserstein, psi, ...
    stattest_threshold: float = 0.05  # per column (a p-value for ks, a distance for others)
    min_rows: int = 50  # fewer non-null values on either side is bad input, not a verdict
    reference_split: str = "train"  # reference rows from this split ("" = all rows)

    def __post_init__(self) -> None:
        require(
            [
                (bool(self.columns), "monitor.columns must name at least one column"),
                (
                    0.0 < self.drift_share <= 1.0,
                    f"monitor.drift_share must be in (0, 1], got {self.drift_share}",
                ),
                (
                    self.stattest_threshold > 0,
                    f"monitor.stattest_threshold must be > 0, got {self.stattest_threshold}",
                ),
                (self.min_rows >= 2, f"monitor.min_rows must be >= 2, got {self.min_rows}"),
            ]
        )


@dataclass(frozen=True)
class ColumnDrift:
    """One column's stat test: score (p-value or distance), threshold, verdict."""

    column: str
    stattest: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """Outcome of :func:`check_drift`; ``drifted`` is the decision schedulers act on."""

    drifted: bool
    share: float
    drift_share_threshold: float
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    n_reference: int
    n_current: int
    report_html_path: Path | None = None
    report_json_path: Path | None = None
    evidently_drifted_count: int | None = field(default=None, repr=False)

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.drifted else 0

    def to_metrics(self) -> dict[str, Any]:
        """The compact JSON written to ``metrics/drift.json``."""
        return {
            "drifted": self.drifted,
            "share": round(self.share, 6),
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": self.drifted_columns,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "columns": {
                name: {k: v for k, v in asdict(c).items() if k != "column"}
                for name, c in self.columns.items()
            },
            "report_html": str(self.report_html_path) if self.report_html_path else None,
        }


def _numeric_columns(df: pd.DataFrame, cfg: MonitorConfig, side: str) -> pd.DataFrame:
    missing = [c for c in cfg.columns if c not in df.columns]
    if missing:
        raise HairsegError(
            f"{side} data lacks drift column(s) {missing}; it has {sorted(map(str, df.columns))}",
            exit_code=EXIT_USAGE,
        )
    out = pd.DataFrame(index=range(len(df)))
    for column in cfg.columns:
        values = df[column].reset_index(drop=True)
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            raise HairsegError(
                f"{side} column {column!r} must be numeric, got {values.dtype}",
                exit_code=EXIT_USAGE,
            )
        out[column] = values.astype("float64")
        n = int(out[column].notna().sum())
        if n < cfg.min_rows:
            raise HairsegError(
                f"{side} column {column!r} has {n} non-null value(s); the stat test needs "
                f"at least monitor.min_rows = {cfg.min_rows}",
                exit_code=EXIT_USAGE,
            )
    return out


def _stattest(cfg: MonitorConfig) -> Any:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    try:
        return get_registered_stattest(cfg.stattest, ColumnType.Numerical)
    except Exception as exc:
        raise HairsegError(
            f"monitor.stattest {cfg.stattest!r} is not an Evidently numerical stat test ({exc})",
            exit_code=EXIT_USAGE,
        ) from None


def check_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    cfg: MonitorConfig,
    out_dir: str | Path | None = None,
) -> DriftResult:
    """Compare ``current_df`` with ``reference_df`` on ``cfg.columns``.

    With ``out_dir``, the Evidently report is saved there as ``drift_report.html`` and
    ``drift_report.json``. Bad input (missing or non-numeric columns, fewer than
    ``cfg.min_rows`` values) raises :class:`HairsegError` with exit code 2.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.core import ColumnType
    from evidently.presets import DataDriftPreset

    reference = _numeric_columns(reference_df, cfg, "reference")
    current = _numeric_columns(current_df, cfg, "current")
    stattest = _stattest(cfg)

    columns: dict[str, ColumnDrift] = {}
    for column in cfg.columns:
        result = stattest(
            reference[column].dropna(),
            current[column].dropna(),
            ColumnType.Numerical,
            cfg.stattest_threshold,
        )
        columns[column] = ColumnDrift(
            column=column,
            stattest=cfg.stattest,
            score=float(result.drift_score),
            threshold=float(result.actual_threshold),
            drifted=bool(result.drifted),
        )
    drifted_columns = [c for c, d in columns.items() if d.drifted]
    share = len(drifted_columns) / len(columns)

    definition = DataDefinition(numerical_columns=list(cfg.columns))
    report = Report(
        [
            DataDriftPreset(
                columns=list(cfg.columns),
                drift_share=cfg.drift_share,
                method=cfg.stattest,
                threshold=cfg.stattest_threshold,
            )
        ]
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    evidently_count = _evidently_drifted_count(snapshot.dict())
    if evidently_count is not None and evidently_count != len(drifted_columns):
        # Same test, same threshold: a mismatch means Evidently changed how it decides.
        raise HairsegError(
            f"Evidently counts {evidently_count} drifted column(s) but the per-column tests "
            f"found {len(drifted_columns)} ({drifted_columns}); refusing to decide"
        )
    result = DriftResult(
        drifted=share >= cfg.drift_share,
        share=share,
        drift_share_threshold=cfg.drift_share,
        drifted_columns=drifted_columns,
        columns=columns,
        n_reference=len(reference),
        n_current=len(current),
        evidently_drifted_count=evidently_count,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.report_html_path = out / REPORT_HTML
        result.report_json_path = out / REPORT_JSON
        _atomic_write(result.report_html_path, snapshot.save_html)
        _atomic_write(
            result.report_json_path,
            lambda p: Path(p).write_text(
                json.dumps(
                    {"decision": result.to_metrics(), "evidently": snapshot.dict()},
                    indent=2,
                    default=str,
                )
            ),
        )
    log.info(
        "drift share %.3f (threshold %.3f): drifted columns %s",
        share,
        cfg.drift_share,
        drifted_columns,
    )
    return result


def load_reference(path: str | Path, cfg: MonitorConfig) -> pd.DataFrame:
    """Training image statistics: the rows of ``cfg.reference_split`` that decoded."""
    path = Path(path)
    if not path.is_file():
        raise HairsegError(
            f"reference statistics {path} not found (the `validate` DVC stage writes "
            "artifacts/image_stats.parquet)",
            exit_code=EXIT_USAGE,
        )
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise HairsegError(
            f"reference {path} is not a readable parquet file: {exc}", exit_code=EXIT_USAGE
        ) from None
    if "decodes" in df.columns:
        df = df[df["decodes"].fillna(False).astype(bool)]
    if cfg.reference_split:
        if "split" not in df.columns:
            raise HairsegError(
                f"reference {path} has no 'split' column but monitor.reference_split is "
                f"{cfg.reference_split!r} (set it to '' to use every row)",
                exit_code=EXIT_USAGE,
            )
        splits = sorted(df["split"].dropna().astype(str).unique())
        df = df[df["split"] == cfg.reference_split]
        if df.empty:
            raise HairsegError(
                f"reference {path} has no rows in split {cfg.reference_split!r} "
                f"(monitor.reference_split); splits present: {splits}",
                exit_code=EXIT_USAGE,
            )
    return df.reset_index(drop=True)


def load_current(path: str | Path) -> pd.DataFrame:
    """Inference statistics: an inference-log folder or one parquet file."""
    from hairseg.monitoring.inference_log import read_inference_log

    return read_inference_log(path)


def _evidently_drifted_count(snapshot: dict[str, Any]) -> int | None:
    for metric in snapshot.get("metrics", []):
        if metric.get("config", {}).get("type", "").endswith("DriftedColumnsCount"):
            return round(float(metric["value"]["count"]))
    return None


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(str(tmp))
    tmp.replace(path)
