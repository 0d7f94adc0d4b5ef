"""The section → dataclass table the doors build typed configs from (hairseg.stages.configs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hairseg.config import load_params
from hairseg.errors import HairsegError
from hairseg.stages.configs import SECTION_TYPES, config_type, typed_configs

ROOT = Path(__file__).resolve().parents[2]


def test_every_params_yaml_section_with_a_stage_builds_its_typed_config() -> None:
    params = load_params(ROOT / "params.yaml")
    names = [name for name in SECTION_TYPES if name in params]
    assert {"model", "train", "quantize", "evaluate", "gate", "register"} <= set(names)
    configs = typed_configs(params, *names)
    for name, cfg in zip(names, configs, strict=True):
        assert dataclasses.is_dataclass(cfg) and type(cfg) is config_type(name)


def test_unknown_section_and_bad_values_are_errors() -> None:
    with pytest.raises(HairsegError, match="no typed config for params section 'nope'"):
        config_type("nope")
    with pytest.raises(HairsegError, match=r"params 'train.epochs' must be an integer"):
        typed_configs({"train": {"epochs": 1.5}}, "train")
