"""The GPU node contract (``hairseg.gpu_nodes``) is what every place that uses it says.

Terraform labels and taints the GPU pools of all three clouds (locals ``gpu_node_labels``
and ``gpu_taint``, output ``gpu_tolerations``, read with python-hcl2), the compiled KFP
training pipeline puts its train step on them (the committed YAML, itself tested equal to
the source by ``hairseg pipeline compile --check``), and the KServe GPU overlay puts the
predictor there. A drift in any of them (a renamed label, ``operator: Exists``) fails here.
"""

from __future__ import annotations

import pytest
import yaml
from tfhelpers import CLUSTER_MODULES, MODULES, REPO_ROOT, locals_of, named_blocks, one

from hairseg.gpu_nodes import GPU_RESOURCE, NODE_LABEL, TAINT, TOLERATION

TRAINING_YAML = REPO_ROOT / "pipelines" / "compiled" / "hairseg-training-v0.1.0.yaml"
GPU_OVERLAY = REPO_ROOT / "serving" / "manifests" / "overlays" / "gpu"


def test_the_toleration_matches_the_taint_exactly() -> None:
    assert TOLERATION == {**TAINT, "operator": "Equal"}


SHARED_CONTRACT = MODULES.parent / "shared" / "gpu_node_contract.tf"


@pytest.mark.parametrize("module", CLUSTER_MODULES)
def test_terraform_labels_and_taints_the_gpu_pool_with_the_contract(module: str) -> None:
    """The contract's locals and outputs are one file linked into every cluster module;
    each module only says which taints its GPU pool carries, the contract's first."""
    link = MODULES / module / "gpu_node_contract.tf"
    assert link.is_symlink(), f"{link} should link to ../../shared/gpu_node_contract.tf"
    assert link.resolve() == SHARED_CONTRACT.resolve(), f"{link} -> {link.resolve()}"
    values = locals_of(MODULES / module)
    label_key, label_value = NODE_LABEL
    assert values["gpu_node_labels"][label_key] == label_value
    assert values["gpu_taint"] == TAINT
    taints = values["gpu_taints"]
    assert taints in ("${[local.gpu_taint]}", ["${local.gpu_taint}"]) or taints.startswith(
        "${concat(['${local.gpu_taint}']"
    ), f"{module}: gpu_taints = {taints!r} does not start with the contract's taint"
    outputs = named_blocks(MODULES / module, "output")
    assert f'local.gpu_node_labels["{label_key}"]' in str(
        one(outputs["gpu_node_selector"]["value"])
    )
    tolerations = one(outputs["gpu_tolerations"]["value"])
    assert "for t in local.gpu_taints" in tolerations
    assert f"'operator': '{TOLERATION['operator']}'" in tolerations
    for field in ("key", "value", "effect"):
        assert f"'{field}': '${{t.{field}}}'" in tolerations, tolerations


def test_the_kfp_train_step_lands_on_the_gpu_pool() -> None:
    spec, platform = yaml.safe_load_all(TRAINING_YAML.read_text())
    resources = spec["deploymentSpec"]["executors"]["exec-train-model"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == GPU_RESOURCE
    train = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-model"]
    assert train["nodeSelector"]["labels"] == dict([NODE_LABEL])
    assert train["tolerations"] == [TOLERATION]


def test_the_kserve_gpu_overlay_lands_on_the_gpu_pool() -> None:
    patch = yaml.safe_load((GPU_OVERLAY / "inferenceservice-gpu.yaml").read_text())
    predictor = patch["spec"]["predictor"]
    assert predictor["nodeSelector"] == dict([NODE_LABEL])
    assert predictor["tolerations"] == [TOLERATION]
    for kind in ("requests", "limits"):
        assert predictor["model"]["resources"][kind][GPU_RESOURCE] == "1"
