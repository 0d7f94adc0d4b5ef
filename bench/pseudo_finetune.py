"""Lever (c) of issue 11, measured: fine-tune on pseudo-labelled real photos + synthetic.

    hairseg data pseudo-label datasets/real_portraits_pool artifacts/pseudo_pool
    .venv/bin/python bench/pseudo_finetune.py OUT --pseudo artifacts/pseudo_pool \\
        --synthetic-images 250 --repeat 2 --epochs 2
    .venv/bin/python bench/real_photos.py OUT/model.fp32.onnx models/model.fp32.onnx \\
        --no-selfie --synthetic data

Starts from ``models/weights.pt`` (the champion ``make run`` trained), trains with
:func:`hairseg.train.fit` on the synthetic train split (the first ``--synthetic-images``)
plus the pseudo-labelled set repeated ``--repeat`` times, the loss weighted by the
pseudo-labels' per-pixel confidence, early-stopped on the synthetic val split; writes
``OUT/weights.pt`` and ``OUT/model.fp32.onnx``. Not part of ``make run``: an experiment.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from hairseg.config import load_params, section
from hairseg.model import load_model, save_model
from hairseg.quantize import export_onnx
from hairseg.train import Split, TrainConfig, fit, load_split

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pseudo", type=Path, default=ROOT / "artifacts/pseudo_pool")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--init", type=Path, default=ROOT / "models")
    parser.add_argument("--synthetic-images", type=int, default=250, help="0 = all")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=None, help="train.seed override")
    parser.add_argument(
        "--augment", action="append", default=[], help="train.augment override, field=value"
    )
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml")
    cfg = dataclasses.replace(
        section(params, "train", TrainConfig), epochs=args.epochs, patience=args.epochs, lr=args.lr
    )
    overrides = {}
    for pair in args.augment:
        name, _, value = pair.partition("=")
        if not hasattr(cfg.augment, name) or not value:
            parser.error(f"--augment {pair!r}: not a train.augment field=value")
        overrides[name] = type(getattr(cfg.augment, name))(value)
    cfg = dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, **overrides))
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    # The network is the one it starts from (its model_config.json), not params.yaml's.
    init, model_cfg = load_model(args.init / "weights.pt", args.init / "model_config.json")
    size = model_cfg.input_size
    synthetic = load_split(args.data, "train", size, args.synthetic_images)
    pseudo = load_split(args.pseudo, "train", size)
    train = Split.concat(synthetic, *([pseudo] * args.repeat))
    val = load_split(args.data, "val", size)
    start = time.perf_counter()
    model, result = fit(
        train,
        val,
        model_cfg,
        cfg,
        checkpoint_dir=args.out / "checkpoints",
        init_state=init.state_dict(),
        init_source=str(args.init / "weights.pt"),
    )
    print(
        f"trained on {len(synthetic)} synthetic + {args.repeat} x {len(pseudo)} pseudo images: "
        f"best val IoU {result.best_val_iou:.4f} at epoch {result.best_epoch}, "
        f"{time.perf_counter() - start:.0f} s"
    )
    save_model(model, model_cfg, args.out / "weights.pt", args.out / "model_config.json")
    export_onnx(model.eval(), model_cfg, args.out / "model.fp32.onnx")
    print(f"wrote {args.out / 'model.fp32.onnx'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
