"""Canary rollout: MLflow alias → traffic split → metric analysis → promote or roll back.

The policy (:mod:`.policy`) is pure; the engine (:mod:`.engine`) drives any backend
through the same steps, persisting state after each so an interrupted rollout can be
resumed or rolled back; backends are the embedded loopback servers (:mod:`.local_backend`)
and a KServe InferenceService in Serverless mode (:mod:`.kserve_backend`).
"""

from hairseg.rollout.config import PolicyConfig, RolloutConfig, load_rollout_config
from hairseg.rollout.policy import Action, ArmMetrics, Decision, StepObservation, decide

__all__ = [
    "Action",
    "ArmMetrics",
    "Decision",
    "PolicyConfig",
    "RolloutConfig",
    "StepObservation",
    "decide",
    "load_rollout_config",
]
