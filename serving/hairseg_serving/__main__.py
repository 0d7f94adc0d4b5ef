"""``python -m hairseg_serving``: the container entry point.

The parser extends KServe's own (``kserve.model_server.parser``: ``--http_port``,
``--workers``, ``--model_name``, ...) with the model location, the bind host and the
limits of the ``serve:`` section.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kserve.model_server import parser as kserve_parser

from hairseg.errors import HairsegError
from hairseg_serving.model_source import resolve_model
from hairseg_serving.server import run_server
from hairseg_serving.settings import load_serve_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hairseg_serving",
        parents=[kserve_parser],
        description="Serve hair masks and try-on with KServe (V1 and V2).",
    )
    parser.set_defaults(model_name="hairseg", enable_grpc=False)
    parser.add_argument(
        "--model", default="/mnt/models", help="ONNX file, model directory or models:/hairseg@ALIAS"
    )
    parser.add_argument(
        "--host", default="0.0.0.0", help="bind address (the pod's network namespace)"
    )
    parser.add_argument("--params", default=None, help="params.yaml whose serve: section to read")
    parser.add_argument("--max_body_bytes", type=int, default=None)
    parser.add_argument("--max_pixels", type=int, default=None)
    parser.add_argument("--max_instances", type=int, default=None)
    parser.add_argument(
        "--max_inflight",
        type=int,
        default=None,
        help="inference requests in flight per worker before a fast 503 (0 = no limit)",
    )
    parser.add_argument("--max_batch_size", type=int, default=None)
    parser.add_argument("--batch_window_ms", type=float, default=None)
    parser.add_argument("--intra_op_threads", type=int, default=None)
    parser.add_argument(
        "--feature_repo", default=None, help="Feast repo for customer profiles ('' = off)"
    )
    parser.add_argument(
        "--inference_log_dir", default=None, help="monitoring log folder ('' = off)"
    )
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_serve_config(
            args.params,
            model_name=args.model_name,
            host=args.host,
            port=args.http_port,
            workers=args.workers,
            max_body_bytes=args.max_body_bytes,
            max_pixels=args.max_pixels,
            max_instances=args.max_instances,
            max_inflight=args.max_inflight,
            max_batch_size=args.max_batch_size,
            batch_window_ms=args.batch_window_ms,
            intra_op_threads=args.intra_op_threads,
            feature_repo=args.feature_repo,
            inference_log_dir=args.inference_log_dir,
        )
        model_path = resolve_model(
            args.model, cache_dir=Path(tempfile.mkdtemp(prefix="hairseg-model-"))
        )
    except HairsegError as exc:
        print(f"hairseg_serving: error: {exc}", file=sys.stderr)
        return exc.exit_code
    run_server(config, model_path, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
