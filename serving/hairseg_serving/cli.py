"""``hairseg serve``: the KServe predictor on loopback, on the champion by default.

    hairseg serve                                  # models:/hairseg@champion, 127.0.0.1:8080
    hairseg serve --model models/model.onnx --port 9000 --workers 2

Limits and defaults come from the ``serve:`` section of ``params.yaml``; flags override it
(the flags are :data:`hairseg_serving.flags.SERVE_FLAGS`, shared with the container's
``python -m hairseg_serving``). This door registers the command itself (entry point
``hairseg.commands:serve`` in pyproject.toml); the core never imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hairseg.cli.options import params_option
from hairseg_serving.flags import click_flags

__all__ = ["serve"]


@click.command("serve")
@click.option(
    "--model",
    "model_uri",
    default="models:/hairseg@champion",
    show_default=True,
    help="ONNX file, model directory or MLflow models:/NAME@ALIAS (MLFLOW_TRACKING_URI or the embedded store).",
)
@params_option("params.yaml with the serve: section (skipped if missing).")
@click_flags
@click.pass_context
def serve(ctx: click.Context, model_uri: str, params_path: Path, **options: object) -> None:
    """Serve hair masks and try-on (KServe V1 + V2) until SIGTERM/Ctrl-C."""
    # kserve.model_server parses sys.argv when imported; our flags are not its flags.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        from hairseg_serving.model_source import resolve_model
        from hairseg_serving.server import run_server
        from hairseg_serving.settings import load_serve_config
    finally:
        sys.argv = argv
    config = load_serve_config(params_path, **options)
    model_path = resolve_model(model_uri, cache_dir=Path(".hairseg") / "serving" / "model")
    log_level = (ctx.obj or {}).get("log_level", "info")
    run_server(config, model_path, log_level=log_level)
