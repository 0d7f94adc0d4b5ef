"""Golden try-on images: check new renders against the committed set, or regenerate it.

    python tests/golden_tryon.py check [--out DIR]       # exit 1 when a render drifted
    python tests/golden_tryon.py regenerate [--out DIR]  # rewrite the expected renders

The set (``tests/golden/tryon/cases.json``) is the 6 committed public-domain Solvay 1927
crops of ``datasets/real_portraits`` plus 2 procedural portraits (inputs committed here),
each with a fixed hair probability map (``*_prob.png``, 64×64: the coarse label or the
generator's mask, area-downsampled and blurred). The renders do not depend on a trained
network, so they are deterministic on any CPU: :func:`hairseg.tryon.try_on` runs every
tier (premium without its second network pass, which needs a model; the serving tests
cover that pass).

A render matches when its luma SSIM to the expected image is at least ``SSIM_MIN`` and the
mean CIEDE2000 between the two over hair pixels is at most ``DELTA_E_MAX``. Every case
writes ``DIR/<case>_<tier>_diff.png`` (expected | new | |difference| × 8).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "tryon"
TIERS = ("fast", "standard", "premium")
SSIM_MIN = 0.99
DELTA_E_MAX = 1.0
DIFF_GAIN = 8


@dataclass(frozen=True)
class Case:
    id: str
    image: Path
    prob: Path
    shade: str
    intensity: float
    golden: Path = GOLDEN

    def expected(self, tier: str) -> Path:
        return self.golden / f"{self.id}_{tier}.png"


@dataclass(frozen=True)
class Result:
    case: str
    tier: str
    ssim: float
    delta_e: float
    ok: bool
    diff: Path | None


def load_cases(golden: Path = GOLDEN) -> list[Case]:
    spec = json.loads((golden / "cases.json").read_text())
    return [
        Case(
            c["id"],
            ROOT / c["image"],
            golden / c["prob"],
            c["shade"],
            float(c["intensity"]),
            golden,
        )
        for c in spec["cases"]
    ]


def render(case: Case, tier: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input RGB, try-on RGB, hair pixels) for one case and tier."""
    from hairseg import imaging
    from hairseg.tryon import try_on

    rgb = imaging.read_image(case.image)
    prob = imaging.read_mask(case.prob).astype(np.float32) / 255.0
    out, _ = try_on(rgb, prob, case.shade, tier=tier, intensity=case.intensity)
    up = cv2.resize(prob, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return rgb, out, up >= 0.5


def compare(expected: np.ndarray, new: np.ndarray, hair: np.ndarray) -> tuple[float, float]:
    """(luma SSIM, mean ΔE2000 over ``hair``) between two renders."""
    from hairseg.colour import delta_e2000, rgb_to_lab, ssim

    if expected.shape != new.shape:
        return 0.0, float("inf")
    de = delta_e2000(rgb_to_lab(expected)[hair], rgb_to_lab(new)[hair])
    return ssim(expected, new), float(de.mean()) if de.size else 0.0


def diff_image(expected: np.ndarray, new: np.ndarray) -> np.ndarray:
    diff = np.abs(expected.astype(np.int16) - new.astype(np.int16)) * DIFF_GAIN
    return np.hstack([expected, new, np.clip(diff, 0, 255).astype(np.uint8)])


def check(out_dir: Path, golden: Path = GOLDEN) -> list[Result]:
    from hairseg import imaging

    results = []
    for case in load_cases(golden):
        for tier in TIERS:
            _, new, hair = render(case, tier)
            path = case.expected(tier)
            if not path.is_file():
                results.append(Result(case.id, tier, 0.0, float("inf"), False, None))
                continue
            expected = imaging.read_image(path)
            s, de = compare(expected, new, hair)
            diff = out_dir / f"{case.id}_{tier}_diff.png"
            if expected.shape == new.shape:
                imaging.write_png(diff, diff_image(expected, new))
            else:
                diff = None
            ok = s >= SSIM_MIN and de <= DELTA_E_MAX
            results.append(Result(case.id, tier, s, de, ok, diff))
    return results


def regenerate(out_dir: Path, golden: Path = GOLDEN) -> list[Path]:
    """Rewrite every expected render; the old ones' diffs go to ``out_dir`` first."""
    from hairseg import imaging

    written = []
    for case in load_cases(golden):
        for tier in TIERS:
            _, new, _ = render(case, tier)
            path = case.expected(tier)
            if path.is_file():
                old = imaging.read_image(path)
                if old.shape == new.shape:
                    imaging.write_png(out_dir / f"{case.id}_{tier}_diff.png", diff_image(old, new))
            imaging.write_png(path, new)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("check", "regenerate"))
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "golden_tryon")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "regenerate":
        for path in regenerate(args.out):
            print(f"wrote {path.relative_to(ROOT)}")
        print(f"diffs against the previous set: {args.out}")
        return 0
    results = check(args.out)
    for r in results:
        flag = "ok  " if r.ok else "FAIL"
        print(f"{flag} {r.case:28s} {r.tier:8s} SSIM {r.ssim:.4f}  ΔE2000(hair) {r.delta_e:.3f}")
    bad = [r for r in results if not r.ok]
    print(
        f"{len(results) - len(bad)}/{len(results)} match (SSIM >= {SSIM_MIN}, ΔE <= {DELTA_E_MAX});"
        f" diff images in {args.out}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
