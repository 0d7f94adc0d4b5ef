"""The ``serve:`` settings that are also command-line flags, declared once.

``hairseg serve`` (click: ``--max-body-bytes``) and ``python -m hairseg_serving`` (KServe's
argparse: ``--max_body_bytes``) both build their flags from :data:`SERVE_FLAGS`. Each flag
overrides the :class:`~hairseg_serving.settings.ServeConfig` field of the same name; a flag
left out keeps the ``serve:`` section's value. Three fields are KServe's own flags in the
container (``--http_port``, ``--workers``, ``--model_name``): its parser declares those.

This module imports nothing heavy, so ``hairseg --help`` (which loads the serve command)
stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SERVE_FLAGS", "ServeFlag", "add_argparse_flags", "argparse_overrides", "click_flags"]


@dataclass(frozen=True)
class ServeFlag:
    """One ``ServeConfig`` field as a flag: its type, help and (optional) choices."""

    field: str
    type: type  # int, float, str, or bool (a --x / --no-x pair)
    help: str
    choices: tuple[str, ...] = ()
    kserve: str = ""  # the container's flag when KServe's parser already declares it

    @property
    def dest(self) -> str:
        """Where argparse stores the value (KServe's name for its own flags)."""
        return self.kserve or self.field


SERVE_FLAGS: tuple[ServeFlag, ...] = (
    ServeFlag("host", str, "Bind address."),
    ServeFlag("port", int, "HTTP port.", kserve="http_port"),
    ServeFlag("workers", int, "Worker processes, each with its own model.", kserve="workers"),
    ServeFlag("model_name", str, "Name in the URL paths.", kserve="model_name"),
    ServeFlag("max_body_bytes", int, "Largest request body in bytes."),
    ServeFlag("max_pixels", int, "Largest image (width x height)."),
    ServeFlag("max_instances", int, "Most images per request."),
    ServeFlag(
        "max_inflight",
        int,
        "Inference requests in flight per worker before new ones get a fast 503 (0 = no limit).",
    ),
    ServeFlag("max_batch_size", int, "Micro-batch size (1 = off)."),
    ServeFlag("batch_window_ms", float, "Wait this long for a batch to fill."),
    ServeFlag("intra_op_threads", int, "ONNX Runtime threads per worker."),
    ServeFlag("feature_repo", str, "Feast repo for customer profiles ('' = off)."),
    ServeFlag("inference_log_dir", str, "Monitoring log folder ('' = off)."),
    ServeFlag(
        "default_tier",
        str,
        "Try-on tier when a request does not say.",
        choices=("fast", "standard", "premium"),  # hairseg.tryon.TIERS (tested equal)
    ),
    ServeFlag("access_log", bool, "One JSON line per request."),
)


def click_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every flag (``--max-body-bytes``; ``None`` = unset)."""
    import click

    for flag in reversed(SERVE_FLAGS):
        name = "--" + flag.field.replace("_", "-")
        help_text = f"{flag.help} [params serve.{flag.field}]"
        if flag.type is bool:
            option = click.option(
                f"{name}/--no-{name[2:]}", flag.field, default=None, help=help_text
            )
        else:
            kind = click.Choice(flag.choices) if flag.choices else flag.type
            option = click.option(name, flag.field, type=kind, default=None, help=help_text)
        func = option(func)
    return func


def add_argparse_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags KServe's parser lacks (``--max_body_bytes``; ``--no_access_log``)."""
    for flag in SERVE_FLAGS:
        if flag.kserve:
            continue
        name = f"--{flag.field}"
        if flag.type is bool:
            parser.add_argument(name, dest=flag.field, action="store_true", help=flag.help)
            parser.add_argument(f"--no_{flag.field}", dest=flag.field, action="store_false")
            parser.set_defaults(**{flag.field: None})
        else:
            parser.add_argument(
                name, type=flag.type, choices=flag.choices or None, default=None, help=flag.help
            )


def argparse_overrides(args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """``ServeConfig`` field -> value of every flag, from parsed argparse arguments."""
    values = vars(args) if isinstance(args, argparse.Namespace) else args
    return {flag.field: values.get(flag.dest) for flag in SERVE_FLAGS}
