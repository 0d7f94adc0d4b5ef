"""Golden try-on renders: every tier of every committed case still matches (SSIM + ΔE on
hair), the comparison catches a real change, and the tool writes its diff images."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from hairseg import imaging

_PATH = Path(__file__).resolve().parents[1] / "golden_tryon.py"
_spec = importlib.util.spec_from_file_location("golden_tryon", _PATH)
golden = importlib.util.module_from_spec(_spec)
sys.modules["golden_tryon"] = golden
_spec.loader.exec_module(golden)


def test_the_golden_set_is_small_and_complete() -> None:
    cases = golden.load_cases()
    assert len(cases) == 8
    assert sum(c.id.startswith("visp_solvay1927") for c in cases) == 6
    size = sum(p.stat().st_size for p in golden.GOLDEN.iterdir())
    assert size < 1_500_000
    for case in cases:
        assert case.image.is_file() and case.prob.is_file()
        for tier in golden.TIERS:
            assert case.expected(tier).is_file(), case.expected(tier)


def test_every_render_matches_its_golden_image(tmp_path: Path) -> None:
    results = golden.check(tmp_path)
    assert len(results) == 8 * 3
    bad = [r for r in results if not r.ok]
    assert not bad, "\n".join(
        f"{r.case}/{r.tier}: SSIM {r.ssim:.4f} ΔE {r.delta_e:.3f}" for r in bad
    )
    for r in results:
        assert r.diff is not None and r.diff.is_file()
        diff = imaging.read_image(r.diff)
        expected = imaging.read_image(golden.GOLDEN / f"{r.case}_{r.tier}.png")
        assert diff.shape == (expected.shape[0], expected.shape[1] * 3, 3)


def test_tiers_differ_and_a_changed_render_fails_the_comparison() -> None:
    case = golden.load_cases()[0]
    _, fast, hair = golden.render(case, "fast")
    _, standard, _ = golden.render(case, "standard")
    assert not np.array_equal(fast, standard)  # the guided filter changed the matte
    expected = imaging.read_image(case.expected("standard"))
    assert golden.compare(expected, standard, hair)[1] <= golden.DELTA_E_MAX
    # Another shade on the same photo: the ΔE on hair must exceed the tolerance.
    other = golden.Case(case.id, case.image, case.prob, "teal", case.intensity)
    _, teal, _ = golden.render(other, "standard")
    assert golden.compare(expected, teal, hair)[1] > 10 * golden.DELTA_E_MAX
    # A slightly shifted intensity is caught too (the tolerance is not loose).
    weaker = golden.Case(case.id, case.image, case.prob, case.shade, case.intensity - 0.15)
    _, faded, _ = golden.render(weaker, "standard")
    assert golden.compare(expected, faded, hair)[1] > golden.DELTA_E_MAX


def test_check_fails_on_a_drifted_golden_and_regenerate_restores_it(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "golden"
    shutil.copytree(golden.GOLDEN, copy)
    case = golden.load_cases(copy)[2]
    target = case.expected("premium")
    drifted = imaging.read_image(target).copy()
    drifted[..., 0] = 255 - drifted[..., 0]  # someone committed a wrong render
    imaging.write_png(target, drifted)
    results = golden.check(tmp_path / "diff1", copy)
    assert [(r.case, r.tier) for r in results if not r.ok] == [(case.id, "premium")]
    diff = imaging.read_image(tmp_path / "diff1" / f"{case.id}_premium_diff.png")
    assert diff[:, 2 * drifted.shape[1] :].max() == 255  # the difference panel shows it
    written = golden.regenerate(tmp_path / "diff2", copy)
    assert target in written and (tmp_path / "diff2" / f"{case.id}_premium_diff.png").is_file()
    assert all(r.ok for r in golden.check(tmp_path / "diff3", copy))


def test_the_tool_exits_zero_when_the_set_matches(tmp_path: Path) -> None:
    assert golden.main(["check", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*_diff.png"))) == 24
