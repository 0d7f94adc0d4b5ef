"""Sweep the fusion priors' head geometry on one model: real-photo and synthetic metrics side by side.

    .venv/bin/python bench/priors_sweep.py models/model.fp32.onnx \
        --variant head_below=0.5 --variant head_falloff=0.2,head_below=0.5 [--synthetic data]

Each ``--variant`` overrides fields of ``params.yaml`` ``priors:`` (``name=value`` pairs,
comma-separated); the first row is ``params.yaml`` as it is. Every row runs the same ONNX
file through :class:`hairseg.inference.OnnxSegmenter` (the serving path), so the rows
differ only by the priors. Scores are deterministic (no timing involved).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hairseg.config import load_params, section
from hairseg.errors import HairsegError
from hairseg.evaluate import (
    EvaluateConfig,
    evaluate_onnx,
    evaluate_real_photos,
    load_real_set,
    load_test_set,
)
from hairseg.priors import PriorsConfig

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(text: str, base: PriorsConfig) -> PriorsConfig:
    fields = {f.name: f.type for f in dataclasses.fields(PriorsConfig)}
    changes: dict[str, object] = {}
    for pair in text.split(","):
        name, _, value = pair.partition("=")
        if name not in fields or not value:
            raise SystemExit(f"error: --variant {text!r}: {name!r} is not a priors: field=value")
        current = getattr(base, name)
        changes[name] = (
            (value.lower() == "true") if isinstance(current, bool) else type(current)(value)
        )
    return dataclasses.replace(base, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an .onnx file")
    parser.add_argument("--variant", action="append", default=[], help="field=value[,field=value]")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--dataset", type=Path, default=ROOT / "datasets/real_portraits")
    parser.add_argument("--synthetic", type=Path, default=None, help="also score this split")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = section(params, "evaluate", EvaluateConfig)
    base = section(params, "priors", PriorsConfig)
    base = dataclasses.replace(base, models_dir=str(ROOT / base.models_dir))
    rows = [("params.yaml", base)] + [(v, parse_variant(v, base)) for v in args.variant]
    quick = dataclasses.replace(
        cfg, latency_batch_sizes=(1,), latency_repeats=1, sweep_thresholds=()
    )
    try:
        real = load_real_set(args.dataset)
        test = load_test_set(args.synthetic, cfg.split) if args.synthetic else None
    except HairsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        "| priors | real IoU | outside head (pooled) | same, mean | inner face | recall "
        "| synthetic IoU |\n|---|---|---|---|---|---|---|"
    )
    for name, priors in rows:
        s = evaluate_real_photos(name, args.model, real, cfg, priors=priors).summary()
        syn = (
            f"{evaluate_onnx(name, args.model, test, quick, priors=priors).summary()['iou']:.4f}"
            if test is not None
            else "-"
        )
        print(
            f"| {name} | {s['real_iou']:.3f} | {s['real_outside_head']:.1%} | "
            f"{s['real_outside_head_mean']:.1%} | {s['real_inner_face']:.1%} | "
            f"{s['real_recall']:.1%} | {syn} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
