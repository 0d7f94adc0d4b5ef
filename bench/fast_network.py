"""LR-ASPP (MobileNetV3-Small) vs the faster network, fp32 and int8, side by side in one run.

Every variant is exported to ONNX at 256² (``hairseg.quantize.export_onnx``) and quantized to
int8 by ``hairseg.quantize.quantize_int8`` with the ``quantize:`` section of params.yaml (what
the quantize stage ships), then timed model-only, batch 1, ``--threads`` ORT threads,
*interleaved*: each timed run goes through every model once (A, B, C, A, B, C, ...), so a
noisy shared machine slows all of them alike. ``--rounds`` repeats the whole measurement;
each round prints every model's median and its ratio to LR-ASPP fp32 from that round.

``--ablation`` adds the intermediate steps from lraspp_mnv3_small to lraspp_mnv3_fast (one
change at a time, cumulative), so the table says what each change bought. ``--profile``
prints ORT's per-op profile (time per op type, share, node count) for LR-ASPP and the fast
network, fp32 and int8.

Latency does not depend on the weight values, so untrained networks are timed (int8 is
calibrated on train images when --data has a dataset, else noise).

    .venv/bin/python bench/fast_network.py --ablation --profile --write docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from model_latency import _calibration, _session, emit, report_header  # bench/ is on sys.path

from hairseg.config import load_params, section
from hairseg.model import LRASPPMobileNetV3Fast, ModelConfig, build_model, count_flops
from hairseg.quantize import QuantizeConfig, export_onnx, quantize_int8, time_models

BASELINE = "lraspp_mnv3_small"
FAST = "lraspp_mnv3_fast"

# Cumulative steps from LR-ASPP to the fast network: (label, LRASPPMobileNetV3Fast kwargs).
_LRASPP = dict(
    relu_only=False,
    squeeze_excite=True,
    reduced_tail=False,
    dilated=True,
    detail=False,
    decoder=0,
    end_nchwc=False,
)
_STEPS = [
    ("+ classify before upsample, static resizes", {}),
    ("+ ReLU instead of HardSwish", dict(relu_only=True)),
    ("+ no squeeze-excite", dict(squeeze_excite=False)),
    ("+ last stage halved (reduced tail)", dict(reduced_tail=True)),
    ("+ last stage at stride 32 (not dilated)", dict(dilated=False)),
    ("+ stride-4 edge classifier", dict(detail=True)),
    ("+ stride-8 decoder (32 ch)", dict(decoder=32)),
]
ABLATION = []
for _label, _change in _STEPS:
    _LRASPP = {**_LRASPP, **_change}
    ABLATION.append((_label, dict(_LRASPP)))
# The last step (+ NCHWc ended before the last Resize) is lraspp_mnv3_fast itself.


# --int8-sweep: quantization settings tried on both networks (overrides of params' quantize:).
INT8_SWEEP = {
    "qdq per-tensor": dict(per_channel=False),
    "qdq u8u8": dict(weight_type="uint8"),
    "qdq s8s8": dict(activation_type="int8"),
    "qoperator": dict(format="qoperator"),
    "qdq Conv only": dict(op_types=("Conv",)),
}


def profile_ops(path: Path, size: int, threads: int, runs: int, tmp: Path) -> list[tuple]:
    """ORT profile, kernel time only: (op type, ms, share, nodes) sorted by time, where ms
    sums each node's *fastest* run of ``runs`` (on a loaded machine a preempted run inflates
    a mean; a node's minimum is its cost when it had the core)."""
    sess = _session(path, threads, profile_prefix=str(tmp / f"prof_{path.stem}"))
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    for _ in range(runs):
        sess.run(None, {"image": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    fastest: dict[tuple[str, str], float] = {}
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            key = (ev["args"]["op_name"], ev["name"])
            fastest[key] = min(fastest.get(key, float("inf")), ev["dur"])
    dur: collections.Counter = collections.Counter()
    nodes: collections.Counter = collections.Counter()
    for (op, _name), us in fastest.items():
        dur[op] += us
        nodes[op] += 1
    total = sum(dur.values()) or 1
    return [(op, d / 1000, d / total, nodes[op]) for op, d in dur.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=40, help="timed runs per model per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--ablation", action="store_true", help="also time each change alone")
    parser.add_argument("--int8-sweep", action="store_true", help="also other int8 settings")
    parser.add_argument("--profile", action="store_true", help="print ORT per-op profiles")
    parser.add_argument("--profile-runs", type=int, default=30)
    parser.add_argument("--write", type=Path, default=None, help="append the tables to this file")
    args = parser.parse_args()

    params = load_params(args.params)
    base_cfg = replace(section(params, "model", ModelConfig), input_size=args.size)
    qcfg = section(params, "quantize", QuantizeConfig)
    torch.manual_seed(0)
    variants: list[tuple[str, torch.nn.Module, ModelConfig]] = [
        (BASELINE, build_model(BASELINE, replace(base_cfg, arch=BASELINE)), base_cfg)
    ]
    if args.ablation:
        for label, kwargs in ABLATION:
            variants.append((label, LRASPPMobileNetV3Fast(base_cfg, **kwargs), base_cfg))
    fast_cfg = replace(base_cfg, arch=FAST)
    variants.append((FAST, build_model(FAST, fast_cfg), fast_cfg))

    load_before = os.getloadavg()
    cal = _calibration(args.size, args.data, args.calibration)
    paths: dict[str, Path] = {}
    gflops: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hairseg-fastnet-") as tmp_dir:
        tmp = Path(tmp_dir)
        for i, (label, model, cfg) in enumerate(variants):
            model.eval()
            gflops[label] = count_flops(model, args.size) / 1e9
            fp32, int8 = tmp / f"v{i}.fp32.onnx", tmp / f"v{i}.int8.onnx"
            export_onnx(model, cfg, fp32, opset=qcfg.opset)
            quantize_int8(fp32, int8, cal, args.size, qcfg)
            paths[f"{label} | fp32"] = fp32
            paths[f"{label} | int8"] = int8
            if args.int8_sweep and label in (BASELINE, FAST):
                for name, overrides in INT8_SWEEP.items():
                    path = tmp / f"v{i}.{len(paths)}.onnx"
                    quantize_int8(fp32, path, cal, args.size, replace(qcfg, **overrides))
                    paths[f"{label} | int8 {name}"] = path
        ref = f"{BASELINE} | fp32"
        rounds = []
        for r in range(args.rounds):
            ms = time_models(
                paths, args.size, repeats=args.repeats, threads=args.threads, warmup=args.warmup
            )
            rounds.append(ms)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
        profiles = {}
        if args.profile:
            for key, path in paths.items():
                profiles[key] = profile_ops(path, args.size, args.threads, args.profile_runs, tmp)
    floor = {key: sum(r[1] for r in rows) for key, rows in profiles.items()}
    detailed = [f"{BASELINE} | fp32", f"{BASELINE} | int8", f"{FAST} | fp32", f"{FAST} | int8"]
    load_after = os.getloadavg()

    lines = [
        *report_header("Fast network vs LR-ASPP"),
        f"{os.cpu_count()} logical CPUs (shared), {args.size}², batch 1, {args.threads} ORT "
        f"thread(s), untrained weights, int8 = `quantize_int8` with params.yaml `quantize:` "
        f"({qcfg.format}, {'per-channel' if qcfg.per_channel else 'per-tensor'}, activations "
        f"{qcfg.activation_type}, weights {qcfg.weight_type}; `int8 <name>`: --int8-sweep's "
        f"overrides of it); {args.rounds} round(s) of "
        f"{args.repeats} interleaved runs per model (median). Load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Ratio = LR-ASPP fp32 ms / "
        "this ms in the same round (higher is faster); the ms are inflated by the shared "
        "machine, the ratios are what compare. With --profile, *kernel floor*: the sum over "
        "nodes of each node's fastest kernel time in the ORT profile (what a run costs when "
        "no other job takes the core), and its ratio.",
        "",
        "| network | GFLOP | variant | "
        + " | ".join(f"round {r + 1} ms (×)" for r in range(len(rounds)))
        + " | median × |"
        + (" kernel floor ms (×) |" if floor else ""),
        "|---|---|---|" + "---|" * len(rounds) + "---|" + ("---|" if floor else ""),
    ]
    for key in paths:
        label, variant = key.split(" | ")
        ratios = [ms[ref] / ms[key] for ms in rounds]
        cells = " | ".join(f"{ms[key]:.2f} ({ms[ref] / ms[key]:.2f}×)" for ms in rounds)
        row = f"| {label} | {gflops[label]:.3f} | {variant} | {cells} | {np.median(ratios):.2f}× |"
        if floor:
            row += f" {floor[key]:.2f} ({floor[ref] / floor[key]:.2f}×) |"
        lines.append(row)
    for key in detailed if profiles else []:
        rows, total = profiles[key], floor[key]
        lines += [
            "",
            f"ORT per-op profile, {key}: kernel time {total:.2f} ms (each node's fastest of "
            f"{args.profile_runs} runs, summed):",
            "",
            "| op | ms | share | nodes |",
            "|---|---|---|---|",
        ]
        lines += [f"| {op} | {ms:.2f} | {share:.1%} | {n} |" for op, ms, share, n in rows[:12]]
    emit(lines, args.write)


if __name__ == "__main__":
    main()
