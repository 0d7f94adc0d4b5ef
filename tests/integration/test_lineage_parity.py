"""Lineage is computed once (hairseg.lineage): the same tiny configuration registered by
``dvc repro`` (the CLI door) and by ``hairseg-training`` under kfp.local (the KFP door)
carries the same lineage tags and the same ONNX metadata.

No third lifecycle run: both runs are the session fixtures the DVC and kfp.local tests
use (tests/integration/lifecycle_runs.py), on the same ``params.yaml`` + ``--tiny``.
"""

from __future__ import annotations

import re

import pytest
from lifecycle_runs import DvcRun, KfpRun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LINEAGE = ("params_hash", "data_md5", "git_commit", "init_source")


def test_dvc_and_kfp_register_the_same_lineage(dvc_lifecycle: DvcRun, kfp_training: KfpRun):
    dvc, kfp = dvc_lifecycle.first, kfp_training.first
    assert kfp is not None, "the kfp.local run registered nothing (gate failed?)"
    assert {k: dvc.tags.get(k) for k in LINEAGE} == {k: kfp.tags.get(k) for k in LINEAGE}
    # ... and they are real values, not a shared placeholder
    assert re.fullmatch(r"[0-9a-f]{16}", dvc.tags["params_hash"])
    assert re.fullmatch(r"[0-9a-f]{32}\.dir", dvc.tags["data_md5"])
    assert re.fullmatch(r"[0-9a-f]{40}", dvc.tags["git_commit"])
    assert dvc.tags["init_source"] == "scratch (no champion registered)"
    # the run ids say which door registered each
    assert dvc.tags["pipeline_run_id"] == "dvc-local"
    assert kfp.tags["pipeline_run_id"] not in ("", "local", "dvc-local")
    # the shipped ONNX files carry identical metadata, with the same params hash as the tag
    assert dvc.onnx_metadata == kfp.onnx_metadata
    assert dvc.onnx_metadata["hairseg.params_hash"] == dvc.tags["params_hash"]
