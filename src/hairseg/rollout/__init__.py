"""Canary rollout: MLflow alias → traffic split → metric analysis → promote or roll back.

The policy (:mod:`.policy`) is pure; the engine (:mod:`.engine`) drives any backend
through the same steps, persisting state after each so an interrupted rollout can be
resumed or rolled back; backends are the embedded loopback servers (:mod:`.local_backend`)
and a KServe InferenceService in Knative or Standard mode (:mod:`.kserve_backend`).
"""

from hairseg.rollout.config import PolicyConfig, RolloutConfig, load_rollout_config
from hairseg.rollout.engine import EXIT_CODES, Outcome, RolloutBackend, RolloutResult, run_rollout
from hairseg.rollout.factory import make_backend
from hairseg.rollout.models import ModelRef, ModelRegistry
from hairseg.rollout.policy import Action, ArmMetrics, Decision, StepObservation, decide

__all__ = [
    "EXIT_CODES",
    "Action",
    "ArmMetrics",
    "Decision",
    "ModelRef",
    "ModelRegistry",
    "Outcome",
    "PolicyConfig",
    "RolloutBackend",
    "RolloutConfig",
    "RolloutResult",
    "StepObservation",
    "decide",
    "load_rollout_config",
    "make_backend",
    "run_rollout",
]
