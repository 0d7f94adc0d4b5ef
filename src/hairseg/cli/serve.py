"""``hairseg serve``: the KServe predictor on loopback, on the champion by default.

    hairseg serve                                  # models:/hairseg@champion, 127.0.0.1:8080
    hairseg serve --model models/model.onnx --port 9000 --workers 2

Limits and defaults come from the ``serve:`` section of ``params.yaml``; flags override it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["serve"]


@click.command("serve")
@click.option(
    "--model",
    "model_uri",
    default="models:/hairseg@champion",
    show_default=True,
    help="ONNX file, model directory or MLflow models:/NAME@ALIAS (MLFLOW_TRACKING_URI or the embedded store).",
)
@click.option("--host", default=None, help="Bind address [params serve.host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="HTTP port [8080].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes [1].")
@click.option("--model-name", default=None, help="Name in the URL paths [hairseg].")
@click.option(
    "--params",
    "params_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("params.yaml"),
    show_default=True,
    help="params.yaml with the serve: section (skipped if missing).",
)
@click.option("--max-body-bytes", type=int, default=None, help="Largest request body.")
@click.option("--max-pixels", type=int, default=None, help="Largest image (width x height).")
@click.option("--max-instances", type=int, default=None, help="Most images per request.")
@click.option(
    "--max-inflight",
    type=int,
    default=None,
    help="Inference requests in flight per worker before new ones get a fast 503 (0 = no limit) [16].",
)
@click.option("--max-batch-size", type=int, default=None, help="Micro-batch size (1 = off).")
@click.option("--batch-window-ms", type=float, default=None, help="Wait this long for a batch.")
@click.option("--intra-op-threads", type=int, default=None, help="ONNX Runtime threads per worker.")
@click.option("--feature-repo", default=None, help="Feast repo for customer profiles ('' = off).")
@click.option("--inference-log-dir", default=None, help="Monitoring log folder ('' = off).")
@click.option(
    "--default-tier",
    type=click.Choice(["fast", "standard", "premium"]),
    default=None,
    help="Try-on tier when a request does not say [standard].",
)
@click.option("--access-log/--no-access-log", default=None, help="One JSON line per request.")
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
