"""Strict params → dataclass conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from hairseg.config import from_mapping, load_params, section
from hairseg.errors import HairsegError


@dataclass
class _Inner:
    steps: tuple[int, ...] = (10, 50, 100)


@dataclass
class _Cfg:
    lr: float = 1e-3
    epochs: int = 3
    init: Literal["champion", "scratch"] | str = "champion"
    inner: _Inner = field(default_factory=_Inner)


def test_section_fills_and_converts() -> None:
    cfg = section({"t": {"lr": 1, "inner": {"steps": [5, 100]}}}, "t", _Cfg)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.inner.steps == (5, 100)
    assert section({}, "t", _Cfg) == _Cfg()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lrr": 1}, "unknown key.*'lrr'.*accepted: epochs, init, inner, lr"),
        ({"epochs": "3"}, "t.epochs' must be an integer"),
        ({"epochs": True}, "t.epochs' must be an integer"),
        ({"inner": {"steps": ["a"]}}, r"t.inner.steps\[0\]' must be an integer"),
    ],
)
def test_bad_params_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(HairsegError, match=message):
        from_mapping(_Cfg, raw, where="t")


def test_load_params_reports_missing_and_invalid_files(tmp_path) -> None:
    with pytest.raises(HairsegError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(HairsegError, match="not valid YAML"):
        load_params(bad)
