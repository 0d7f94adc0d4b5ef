"""Configuration flows one way: ``params.yaml`` → typed dataclasses → pure functions.

Each module owns the dataclass for its own ``params.yaml`` section and builds it with
:func:`section`; this module only knows how to read YAML and fill dataclasses strictly
(unknown keys and wrong types are errors that name the key and what is accepted).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hairseg.errors import EXIT_USAGE, HairsegError

__all__ = ["from_mapping", "load_params", "require", "section"]

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file into a plain dict (an empty file is an empty dict)."""
    path = Path(path)
    if not path.is_file():
        raise HairsegError(f"params file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise HairsegError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise HairsegError(f"{path} must hold a mapping at the top level")
    return loaded


def section(params: Mapping[str, Any], name: str, cls: type[T]) -> T:
    """Build ``cls`` from ``params[name]``; a missing section means all defaults."""
    raw = params.get(name, {}) or {}
    if not isinstance(raw, Mapping):
        raise HairsegError(f"params section '{name}' must be a mapping, got {type(raw).__name__}")
    return from_mapping(cls, raw, where=name)


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """The ``__post_init__`` check of a params dataclass: a usage error (exit 2) with the
    message of the first ``(ok, message)`` whose ``ok`` is false."""
    for ok, message in checks:
        if not ok:
            raise HairsegError(message, exit_code=EXIT_USAGE)


def from_mapping(cls: type[T], raw: Mapping[str, Any], *, where: str = "") -> T:
    """Fill dataclass ``cls`` from ``raw``, converting and checking each field's type."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise HairsegError(
            f"unknown key(s) {', '.join(repr(k) for k in unknown)} in params '{where}'; "
            f"accepted: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {
        name: _coerce(hints[name], value, f"{where}.{name}" if where else name)
        for name, value in raw.items()
    }
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except HairsegError as exc:
                errors.append(str(exc))
        raise HairsegError(f"params '{where}': {value!r} does not fit {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise HairsegError(
                f"params '{where}': {value!r} is not one of {', '.join(map(repr, args))}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise HairsegError(f"params '{where}' must be a mapping")
        return from_mapping(tp, value, where=where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise HairsegError(f"params '{where}' must be a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise HairsegError(f"params '{where}' must have {len(args)} items")
            return tuple(
                _coerce(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        coerced = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(coerced) if origin is tuple else coerced
    if origin is dict:
        if not isinstance(value, Mapping):
            raise HairsegError(f"params '{where}' must be a mapping")
        key_t, val_t = args or (Any, Any)
        return {
            _coerce(key_t, k, where): _coerce(val_t, v, f"{where}.{k}") for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise HairsegError(f"params '{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HairsegError(f"params '{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HairsegError(f"params '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise HairsegError(f"params '{where}' must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise HairsegError(f"params '{where}' must be a path, got {value!r}")
        return Path(value)
    return value
