"""The feature stages: the demo customer table and the Feast build (apply, materialize,
point-in-time evaluation slices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.stages.files import write_json

if TYPE_CHECKING:
    import pandas as pd

    from hairseg.features.store import FeaturesConfig

__all__ = [
    "FeaturesResult",
    "demo_customers_stage",
    "eval_slices_stage",
    "features_build_stage",
    "read_image_stats",
]


def demo_customers_stage(
    cfg: FeaturesConfig, out: Path | None = None, n: int | None = None, seed: int | None = None
) -> tuple[int, Path]:
    """Write the seeded demo customer table behind ``customer_profile_v1`` (default:
    ``<repo>/data/customers.parquet``); returns (rows, path)."""
    from hairseg.features.customers import demo_customers, write_customers

    out = out or cfg.repo / "data" / "customers.parquet"
    df = demo_customers(n if n is not None else cfg.n_customers, cfg.seed if seed is None else seed)
    write_customers(df, out)
    return len(df), out


def read_image_stats(path: Path) -> pd.DataFrame:
    """The validate stage's image statistics, checked for the entity columns."""
    import pandas as pd

    if not path.is_file():
        raise HairsegError(
            f"image statistics {path} not found (the `validate` DVC stage writes it)",
            exit_code=EXIT_USAGE,
        )
    df = pd.read_parquet(path)
    missing = [c for c in ("image_id", "event_timestamp") if c not in df.columns]
    if missing:
        raise HairsegError(f"{path} lacks column(s) {missing}", exit_code=EXIT_USAGE)
    return df


def eval_slices_stage(
    cfg: FeaturesConfig, repo: Path | None, config_file: Path | None, image_stats: Path, out: Path
) -> pd.DataFrame:
    """Per-image evaluation slices read from the store (``get_historical_features``)."""
    from hairseg.data.stats import write_stats
    from hairseg.features.store import eval_slices

    entities = read_image_stats(image_stats)[["image_id", "event_timestamp"]]
    slices = eval_slices(
        repo or cfg.repo,
        entities,
        brightness_edges=cfg.brightness_edges,
        coverage_edges=cfg.coverage_edges,
        config_file=config_file,
    )
    write_stats(slices, out)
    return slices


@dataclass
class FeaturesResult:
    """What the store holds after the build (``artifacts/features_summary.json``)."""

    repo: Path
    summary: dict[str, Any] = field(repr=False)

    @property
    def feature_views(self) -> list[str]:
        return list(self.summary.get("registry", {}).get("feature_views", []))

    @property
    def materialized(self) -> dict[str, Any]:
        return dict(self.summary.get("materialized") or {})


def features_build_stage(
    cfg: FeaturesConfig,
    *,
    image_stats: Path,
    slices_out: Path,
    summary_out: Path,
    repo: Path | None = None,
    config_file: Path | None = None,
) -> FeaturesResult:
    """``feast apply`` + materialize + evaluation slices, and a JSON summary (the
    ``features`` DVC stage). ``repo`` defaults to ``cfg.repo``, ``config_file`` to the
    repo's ``feature_store.yaml``."""
    from hairseg.features.store import apply_repo, materialize

    repo = repo or cfg.repo
    read_image_stats(image_stats)  # fail fast, before the slow apply
    registry = apply_repo(repo, config_file)
    online = materialize(repo, config_file=config_file)
    slices = eval_slices_stage(cfg, repo, config_file, image_stats, slices_out)
    summary = {
        "registry": registry,
        "materialized": online,
        "eval_slices": {
            column: slices[column].value_counts().sort_index().to_dict()
            for column in slices.columns
            if column not in ("image_id",)
        },
    }
    write_json(summary_out, summary)
    return FeaturesResult(Path(repo), summary)
