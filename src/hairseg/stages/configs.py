"""Which dataclass each ``params.yaml`` section builds, so a door can ask for the typed
configs of a stage by section name (``typed_configs(params, "model", "train")``) without
importing every module that owns one. Modules are imported only when asked for."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from hairseg.errors import HairsegError

__all__ = ["SECTION_TYPES", "config_type", "typed_configs"]

#: ``params.yaml`` section → ``module:Dataclass`` that owns it.
SECTION_TYPES: dict[str, str] = {
    "data": "hairseg.data.generate:DataParams",
    "validate": "hairseg.data.validate:ValidateParams",
    "features": "hairseg.features.store:FeaturesConfig",
    "model": "hairseg.model:ModelConfig",
    "train": "hairseg.train:TrainConfig",
    "quantize": "hairseg.quantize:QuantizeConfig",
    "evaluate": "hairseg.evaluate:EvaluateConfig",
    "priors": "hairseg.priors:PriorsConfig",
    "gate": "hairseg.gate:GateConfig",
    "register": "hairseg.registry:RegisterConfig",
    "rollout": "hairseg.rollout.config:RolloutConfig",
    "monitor": "hairseg.monitoring.drift:MonitorConfig",
    "batch": "hairseg.batch:BatchConfig",
}


def config_type(name: str) -> type[Any]:
    """The dataclass of section ``name``."""
    if name not in SECTION_TYPES:
        raise HairsegError(
            f"no typed config for params section {name!r}; known: {', '.join(SECTION_TYPES)}"
        )
    module, cls = SECTION_TYPES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def typed_configs(params: Mapping[str, Any], *names: str) -> tuple[Any, ...]:
    """The typed configs of sections ``names`` of ``params``, in that order (strict:
    unknown keys and wrong types are errors naming the key)."""
    from hairseg.config import section

    return tuple(section(params, name, config_type(name)) for name in names)
