"""``python -m hairseg_serving``: the container entry point.

The parser extends KServe's own (``kserve.model_server.parser``: ``--http_port``,
``--workers``, ``--model_name``, ...) with the model location and the ``serve:`` flags
that ``hairseg serve`` also takes (:data:`hairseg_serving.flags.SERVE_FLAGS`, declared once).
The rollout's loopback predictors (``hairseg.rollout.servers``) start this entry point too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kserve.model_server import parser as kserve_parser

from hairseg.errors import HairsegError
from hairseg_serving.flags import add_argparse_flags, argparse_overrides
from hairseg_serving.model_source import resolve_model
from hairseg_serving.server import run_server
from hairseg_serving.settings import load_serve_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hairseg_serving",
        parents=[kserve_parser],
        description="Serve hair masks and try-on with KServe (V1 and V2).",
    )
    parser.add_argument(
        "--model", default="/mnt/models", help="ONNX file, model directory or models:/hairseg@ALIAS"
    )
    parser.add_argument("--params", default=None, help="params.yaml whose serve: section to read")
    parser.add_argument("--log_level", default="INFO")
    add_argparse_flags(parser)  # the serve: flags, shared with `hairseg serve`
    # The container binds the pod's network namespace.
    parser.set_defaults(model_name="hairseg", enable_grpc=False, host="0.0.0.0")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_serve_config(args.params, **argparse_overrides(args))
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
