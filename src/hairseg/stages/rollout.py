"""The rollout stage: canary-roll a registered candidate out, then promote or roll back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hairseg.rollout.config import RolloutConfig
    from hairseg.rollout.engine import RolloutResult

__all__ = ["rollout_markdown", "rollout_stage", "rollout_status"]


def _target(
    cfg: RolloutConfig,
    tracking_uri: str,
    dataset: Path | None,
    state_path: Path,
    cache_dir: Path,
    kube_context: str | None,
) -> tuple[Any, Any]:
    from hairseg.rollout.factory import make_backend
    from hairseg.rollout.models import ModelRegistry

    models = ModelRegistry(tracking_uri, cache_dir)
    target = make_backend(
        cfg,
        models,
        backend=cfg.backend,
        dataset=dataset,
        state_path=state_path,
        kube_context=kube_context,
    )
    return models, target


def rollout_stage(
    cfg: RolloutConfig,
    *,
    tracking_uri: str,
    candidate_uri: str = "models:/hairseg@candidate",
    dataset: Path | None = Path("data"),
    reports_dir: Path = Path("reports/rollout"),
    state_path: Path = Path(".hairseg/rollout_state.json"),
    cache_dir: Path = Path(".hairseg/rollout/models"),
    kube_context: str | None = None,
    abort: bool = False,
    backend: str | None = None,
) -> RolloutResult:
    """Shift traffic to ``candidate_uri`` in ``cfg``'s steps on ``cfg.backend`` (``local``:
    loopback predictor servers replaying ``dataset``; ``kserve``: the cluster's
    InferenceService), analyse canary vs stable, promote or roll back; ``abort`` rolls an
    in-flight rollout back; ``backend`` overrides ``cfg.backend``. A rollback is an outcome
    (in the result), not an exception."""
    import dataclasses

    from hairseg.rollout.engine import run_rollout

    if backend is not None:
        cfg = dataclasses.replace(cfg, backend=backend)

    models, target = _target(cfg, tracking_uri, dataset, state_path, cache_dir, kube_context)
    return run_rollout(
        cfg, target, models, candidate_uri=candidate_uri, reports_dir=reports_dir, abort=abort
    )


def rollout_status(
    cfg: RolloutConfig,
    *,
    tracking_uri: str,
    dataset: Path | None = Path("data"),
    state_path: Path = Path(".hairseg/rollout_state.json"),
    cache_dir: Path = Path(".hairseg/rollout/models"),
    kube_context: str | None = None,
) -> dict[str, Any] | None:
    """The persisted rollout state of ``cfg.backend`` (None when there is none)."""
    _, target = _target(cfg, tracking_uri, dataset, state_path, cache_dir, kube_context)
    try:
        return target.load_state()
    finally:
        target.close()


def rollout_markdown(result: RolloutResult, reports_dir: Path) -> str:
    """The rollout's Markdown report: the record's ``.md`` beside it, else
    ``reports_dir/latest.md``, else a one-line summary."""
    candidates = [reports_dir / "latest.md"]
    if result.record_path is not None:
        candidates.insert(0, Path(result.record_path).with_suffix(".md"))
    for path in candidates:
        if path.is_file():
            return path.read_text()
    return f"# Rollout\n\n{result.summary()}\n"
