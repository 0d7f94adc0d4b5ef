"""Build a backend from config + command-line choices (the CLI and the KFP step share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hairseg.errors import EXIT_USAGE, HairsegError
from hairseg.rollout.config import RolloutConfig
from hairseg.rollout.engine import RolloutBackend
from hairseg.rollout.models import ModelRegistry

__all__ = ["kubernetes_apis", "make_backend"]


def kubernetes_apis(context: str | None = None) -> tuple[Any, Any]:
    """``(CustomObjectsApi, CoreV1Api)`` from the in-cluster config, else kubeconfig."""
    try:
        from kubernetes import client, config
    except ImportError:  # pragma: no cover - the serving extra brings it
        raise HairsegError(
            "the kserve backend needs the kubernetes client (pip install 'hairseg[serving]')",
            exit_code=EXIT_USAGE,
        ) from None
    try:
        if context is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
        else:
            config.load_kube_config(context=context)
    except (config.ConfigException, OSError) as exc:
        raise HairsegError(
            f"no Kubernetes credentials (in-cluster or kubeconfig{f' context {context}' if context else ''}): "
            f"{exc}",
            exit_code=EXIT_USAGE,
        ) from None
    return client.CustomObjectsApi(), client.CoreV1Api()


def make_backend(
    cfg: RolloutConfig,
    models: ModelRegistry,
    *,
    backend: str,
    dataset: str | Path | None,
    state_path: str | Path = ".hairseg/rollout_state.json",
    kube_context: str | None = None,
) -> RolloutBackend:
    """The backend named ``backend`` (``local`` or ``kserve``), configured from ``cfg``."""
    if backend == "local":
        from hairseg.rollout.local_backend import LocalBackend

        if dataset is None:
            raise HairsegError("the local backend needs --dataset", exit_code=EXIT_USAGE)
        return LocalBackend(cfg.local, cfg.policy, models, dataset=dataset, state_path=state_path)
    if backend == "kserve":
        from hairseg.rollout.kserve_backend import select_backend

        custom, core = kubernetes_apis(kube_context)
        # Knative (canaryTrafficPercent) or Standard (spec.canary), per the ISVC's mode.
        return select_backend(
            cfg.kserve,
            cfg.policy,
            models,
            custom_api=custom,
            core_api=core,
            dataset=dataset if dataset and Path(dataset).is_dir() else None,
            split=cfg.local.split,
        )
    raise HairsegError(f"unknown backend {backend!r}; use local or kserve", exit_code=EXIT_USAGE)
