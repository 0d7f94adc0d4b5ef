"""The rollout loop, backend-agnostic: gate → steps (shift, observe, decide) → promote/roll back.

Invariant: the ``champion`` alias and the traffic never disagree once a run ends. While a
rollout is in flight its state (what moved, which step, every step's metrics) is persisted
by the backend *with* each traffic change, so a killed run is resumed (same candidate) or
rolled back (``abort=True``, or a different candidate) by running the command again.
Promotion is journalled: traffic first (phase ``promoting``), then the alias, then
``done`` — a run killed in between completes the promotion when it is run again.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hairseg.errors import HairsegError
from hairseg.jsonio import write_json_atomic
from hairseg.rollout.config import RolloutConfig
from hairseg.rollout.models import ModelRef, ModelRegistry
from hairseg.rollout.policy import Action, StepObservation, decide
from hairseg.rollout.servers import GateError

__all__ = [
    "EXIT_CODES",
    "Outcome",
    "RolloutBackend",
    "RolloutResult",
    "run_rollout",
]

log = logging.getLogger(__name__)


class Outcome:
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"  # failed the pre-traffic gate: no traffic ever moved
    ABORTED = "aborted"  # an in-flight rollout rolled back on request
    NOTHING = "nothing_to_roll_out"


# Distinct exit codes so a scheduler can tell "shipped" from "safely refused".
EXIT_CODES = {
    Outcome.PROMOTED: 0,
    Outcome.NOTHING: 0,
    Outcome.ABORTED: 0,
    Outcome.ROLLED_BACK: 3,
    Outcome.REJECTED: 4,
}

# Phases of persisted state. "analysing": canary holds ``percent`` % of traffic.
ANALYSING, PROMOTING, ROLLING_BACK, DONE = "analysing", "promoting", "rolling_back", "done"


class RolloutBackend(Protocol):
    """Where traffic lives. Every method that moves traffic also persists ``state`` with it."""

    name: str

    def preflight(self) -> None:
        """Check the target can do a canary at all (raise HairsegError with the reason)."""

    def load_state(self) -> dict[str, Any] | None:
        """The persisted state of the last rollout (None when there never was one)."""

    def save_state(self, state: dict[str, Any]) -> None:
        """Persist ``state`` without moving traffic."""

    def gate(self, candidate: ModelRef, stable: ModelRef) -> dict[str, Any]:
        """Load ``candidate`` in the real serving code and send a smoke request.

        Raises :class:`GateError`; on success returns details for the record.
        """

    def shift(self, candidate: ModelRef, stable: ModelRef, percent: int, state: dict) -> None:
        """Send ``percent`` % of traffic to ``candidate``, the rest to ``stable``."""

    def observe(self, percent: int) -> tuple[StepObservation, dict[str, Any]]:
        """Measure canary vs stable at the current split (bounded in time and count)."""

    def promote(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        """All traffic to ``candidate``; it becomes the stable revision."""

    def rollback(self, candidate: ModelRef, stable: ModelRef, state: dict) -> None:
        """All traffic to ``stable``; the candidate leaves the serving path."""

    def close(self) -> None:
        """Release what the backend started (servers, clients)."""


@dataclass
class RolloutResult:
    """What a rollout did. ``record`` is the full audit record (also written to disk)."""

    outcome: str
    candidate_version: int | None
    champion_version: int | None
    reasons: list[str]
    record_path: Path | None
    resumed: bool = False
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def metrics(self) -> dict[str, Any]:
        """A flat summary for DVC metrics / KFP ``Output[Metrics]``."""
        steps = self.record.get("steps", [])
        return {
            "outcome": self.outcome,
            "promoted": int(self.outcome == Outcome.PROMOTED),
            "rolled_back": int(self.outcome in (Outcome.ROLLED_BACK, Outcome.ABORTED)),
            "candidate_version": self.candidate_version or 0,
            "champion_version": self.champion_version or 0,
            "steps_analysed": len(steps),
            "max_canary_percent": max((s["percent"] for s in steps), default=0),
            "canary_requests": sum(s["observation"]["canary"]["requests"] for s in steps),
            "canary_errors": sum(s["observation"]["canary"]["errors"] for s in steps),
        }

    def summary(self) -> str:
        cand = f"v{self.candidate_version}" if self.candidate_version else "-"
        champ = f"v{self.champion_version}" if self.champion_version else "-"
        why = "; ".join(self.reasons[:3])
        return f"rollout {self.outcome}: candidate {cand}, champion {champ}" + (
            f" ({why})" if why else ""
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class _Run:
    """One rollout in flight: its persisted state and what it acts through."""

    state: dict[str, Any]
    backend: RolloutBackend
    models: ModelRegistry
    reports: Path
    resumed: bool = False

    @property
    def candidate(self) -> ModelRef:
        return ModelRef.from_dict(self.state["candidate"])

    @property
    def stable(self) -> ModelRef:
        return ModelRef.from_dict(self.state["stable"])


def run_rollout(
    cfg: RolloutConfig,
    backend: RolloutBackend,
    models: ModelRegistry,
    *,
    candidate_uri: str = "models:/hairseg@candidate",
    reports_dir: str | Path = "reports/rollout",
    abort: bool = False,
) -> RolloutResult:
    """Roll ``candidate_uri`` out through ``backend`` and promote or roll it back.

    - An in-flight rollout (persisted state) of the same candidate is resumed from its
      last step; of another candidate, it is rolled back first; ``abort=True`` rolls it
      back and stops.
    - No champion yet, or candidate == champion: nothing to roll out (a record says so).
    - The candidate must pass the pre-traffic gate before any traffic moves.
    """
    reports = Path(reports_dir)
    backend.preflight()
    state = backend.load_state()
    in_flight = state is not None and state.get("phase") not in (None, DONE)
    try:
        if in_flight:
            assert state is not None
            run = _Run(state, backend, models, reports, resumed=True)
            phase = state["phase"]
            if abort or phase == ROLLING_BACK:
                reason = "aborted by operator" if abort else "completing an interrupted rollback"
                return _finish_rollback(run, [reason], aborted=abort)
            if phase == PROMOTING:
                return _finish_promotion(run)
            requested = models.resolve_optional(candidate_uri)
            if requested is None or requested.version != state["candidate"]["version"]:
                why = (
                    f"{candidate_uri} no longer points at a version"
                    if requested is None
                    else f"superseded by a rollout of v{requested.version}"
                )
                _finish_rollback(run, [why], aborted=True)
            else:
                log.info(
                    "resuming rollout %s of v%s at step %s%%",
                    state["rollout_id"], requested.version, state["percent"],
                )  # fmt: skip
                # The canary must still load (and the local servers restart).
                try:
                    backend.gate(requested, run.stable)
                except GateError as exc:
                    return _finish_rollback(run, [f"candidate failed the gate on resume: {exc}"])
                state.setdefault("resumed_at", []).append(_now())
                return _run_steps(cfg, run)
        elif abort:
            return _nothing(models, reports, None, "no rollout in progress to abort", backend)

        candidate = models.resolve_optional(candidate_uri)
        if candidate is None:
            return _nothing(
                models, reports, None,
                f"{candidate_uri} points at no version (no model passed the register gate)",
                backend,
            )  # fmt: skip
        champion = models.champion()
        if champion is None:
            return _nothing(
                models, reports, candidate,
                "no champion yet: the register stage makes the first version champion "
                "(bootstrap), so there is nothing to canary against",
                backend,
            )  # fmt: skip
        if champion.version == candidate.version:
            return _nothing(
                models, reports, candidate, f"candidate v{candidate.version} is already champion",
                backend,
            )  # fmt: skip

        state = {
            "rollout_id": f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-v{candidate.version}-"
            f"{uuid.uuid4().hex[:6]}",
            "backend": backend.name,
            "candidate": candidate.as_dict(),
            "stable": champion.as_dict(),
            "phase": "gate",
            "step_index": 0,
            "percent": 0,
            "holds": 0,
            "steps": [],
            "policy": _policy_dict(cfg),
            "started_at": _now(),
        }
        try:
            state["gate"] = {"passed": True, **backend.gate(candidate, champion), "at": _now()}
        except GateError as exc:
            state["gate"] = {"passed": False, "reason": str(exc), "at": _now()}
            state.update(phase=DONE, outcome=Outcome.REJECTED, reasons=[str(exc)])
            state["finished_at"] = _now()
            path = _write_record(state, reports)
            models.tag(candidate, _tags(state, path))
            return _result(state, path, champion.version)
        return _run_steps(cfg, _Run(state, backend, models, reports))
    finally:
        backend.close()


def _policy_dict(cfg: RolloutConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(cfg.policy)


def _run_steps(cfg: RolloutConfig, run: _Run) -> RolloutResult:
    state, backend, models = run.state, run.backend, run.models
    candidate, stable = run.candidate, run.stable
    steps = cfg.policy.steps
    models.tag(candidate, {"rollout": "in_progress", "rollout.id": state["rollout_id"]})
    try:
        while True:
            index = int(state["step_index"])
            percent = steps[index]
            state.update(phase=ANALYSING, percent=percent, updated_at=_now())
            backend.shift(candidate, stable, percent, state)
            started = _now()
            t0 = time.monotonic()
            observation, details = backend.observe(percent)
            decision = decide(observation, index, cfg.policy, holds=int(state["holds"]))
            state["steps"].append(
                {
                    "index": index,
                    "percent": percent,
                    "started_at": started,
                    "finished_at": _now(),
                    "seconds": round(time.monotonic() - t0, 3),
                    "observation": observation.as_dict(),
                    "details": details,
                    "decision": decision.as_dict(),
                }
            )
            log.info("step %s%%: %s (%s)", percent, decision.action, "; ".join(decision.reasons))
            if decision.action is Action.ROLLBACK:
                return _finish_rollback(run, list(decision.reasons))
            if decision.action is Action.PROMOTE:
                state.update(phase=PROMOTING, reasons=list(decision.reasons), updated_at=_now())
                return _finish_promotion(run)
            if decision.action is Action.HOLD:
                state["holds"] = int(state["holds"]) + 1
            else:
                state.update(step_index=index + 1, holds=0)
            backend.save_state(state)
            _write_record(state, run.reports)
    except (Exception, KeyboardInterrupt) as exc:
        if state.get("phase") in (PROMOTING, DONE):
            raise
        reason = f"rollout interrupted by {type(exc).__name__}: {exc}"
        log.error("%s; rolling back", reason)
        try:
            _finish_rollback(run, [reason])
        except Exception as rollback_exc:  # state stays in flight: the next run retries
            raise HairsegError(
                f"{reason}; the rollback failed too ({rollback_exc}); run `hairseg rollout "
                "--abort` to retry it"
            ) from exc
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise HairsegError(f"{reason}; rolled back, champion unchanged") from exc


def _finish_promotion(run: _Run) -> RolloutResult:
    state, backend, models = run.state, run.backend, run.models
    candidate, stable = run.candidate, run.stable
    state.update(phase=PROMOTING, updated_at=_now())
    backend.promote(candidate, stable, state)  # traffic first, persisted as "promoting"
    models.promote(candidate, f"canary rollout {state['rollout_id']}: all steps passed")
    state.update(phase=DONE, outcome=Outcome.PROMOTED, finished_at=_now())
    state.setdefault("reasons", ["all steps passed"])
    backend.save_state(state)
    path = _write_record(state, run.reports)
    models.tag(candidate, _tags(state, path))
    models.tag(stable, {"rollout.replaced_by": str(candidate.version)})
    return _result(state, path, candidate.version, resumed=run.resumed)


def _finish_rollback(run: _Run, reasons: list[str], *, aborted: bool = False) -> RolloutResult:
    state, candidate = run.state, run.candidate
    state.update(phase=ROLLING_BACK, reasons=reasons, updated_at=_now())
    run.backend.rollback(candidate, run.stable, state)
    outcome = Outcome.ABORTED if aborted else Outcome.ROLLED_BACK
    state.update(phase=DONE, outcome=outcome, percent=0, finished_at=_now())
    run.backend.save_state(state)
    path = _write_record(state, run.reports)
    run.models.tag(candidate, _tags(state, path))
    champion = run.models.champion()
    return _result(state, path, champion.version if champion else None, resumed=run.resumed)


def _nothing(
    models: ModelRegistry,
    reports: Path,
    candidate: ModelRef | None,
    reason: str,
    backend: RolloutBackend,
) -> RolloutResult:
    champion = models.champion()
    state = {
        "rollout_id": f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-noop-{uuid.uuid4().hex[:6]}",
        "backend": backend.name,
        "candidate": candidate.as_dict() if candidate else None,
        "stable": champion.as_dict() if champion else None,
        "phase": DONE,
        "outcome": Outcome.NOTHING,
        "reasons": [reason],
        "steps": [],
        "started_at": _now(),
        "finished_at": _now(),
    }
    path = _write_record(state, reports)
    return _result(state, path, champion.version if champion else None)


def _result(
    state: dict[str, Any], path: Path | None, champion: int | None, *, resumed: bool = False
) -> RolloutResult:
    cand = state.get("candidate")
    return RolloutResult(
        outcome=state["outcome"],
        candidate_version=cand["version"] if cand else None,
        champion_version=champion,
        reasons=list(state.get("reasons", [])),
        record_path=path,
        resumed=resumed,
        record=state,
    )


def _tags(state: dict[str, Any], record_path: Path) -> dict[str, Any]:
    """The audit trail on the candidate version (the JSON record has every number)."""
    return {
        "rollout": state["outcome"],
        "rollout.id": state["rollout_id"],
        "rollout.backend": state["backend"],
        "rollout.reason": "; ".join(state.get("reasons", [])),
        "rollout.record": str(record_path),
        "rollout.finished_at": state.get("finished_at", ""),
        "rollout.steps": [
            {
                "percent": s["percent"],
                "action": s["decision"]["action"],
                "canary": s["observation"]["canary"],
                "disagreement": s["observation"]["disagreement"],
            }
            for s in state.get("steps", [])
        ],
    }


def _write_record(state: dict[str, Any], reports: Path) -> Path:
    """``reports/rollout/<id>.json`` + ``.md``; finished rollouts also update ``latest``."""
    path = reports / f"{state['rollout_id']}.json"
    write_json_atomic(path, state)
    markdown = render_markdown(state)
    (reports / f"{state['rollout_id']}.md").write_text(markdown)
    if state.get("phase") == DONE:
        write_json_atomic(reports / "latest.json", state)
        (reports / "latest.md").write_text(markdown)
    return path


def render_markdown(state: dict[str, Any]) -> str:
    """A human-readable rollout record."""
    cand = state.get("candidate") or {}
    stable = state.get("stable") or {}
    lines = [
        f"# Rollout {state['rollout_id']}",
        "",
        f"- outcome: **{state.get('outcome', 'in progress (' + str(state.get('phase')) + ')')}**",
        f"- backend: {state.get('backend')}",
        f"- candidate: {cand.get('uri', '-')}  stable/champion before: {stable.get('uri', '-')}",
        f"- started: {state.get('started_at')}  finished: {state.get('finished_at', '-')}",
    ]
    for reason in state.get("reasons", []):
        lines.append(f"- reason: {reason}")
    gate = state.get("gate")
    if gate:
        lines.append(f"- pre-traffic gate: {'passed' if gate['passed'] else 'FAILED'}")
    if state.get("steps"):
        lines += [
            "",
            "| step | canary % | canary req | canary err | canary p95 ms | stable req | "
            "stable err | stable p95 ms | mirrored | 1-IoU | decision |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in state["steps"]:
            o = s["observation"]
            c, st = o["canary"], o["stable"]
            lines.append(
                f"| {s['index']} | {s['percent']} | {c['requests']} | {c['errors']} | "
                f"{_fmt(c['p95_ms'])} | {st['requests']} | {st['errors']} | "
                f"{_fmt(st['p95_ms'])} | {o['mirrored']} | {_fmt(o['disagreement'], 3)} | "
                f"{s['decision']['action']} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
