"""The GPU node contract: how a pod asks for a GPU node, declared once.

The Terraform GPU node pools (``infra/terraform/modules/{aws,gcp,azure}-gpu-cluster``,
locals ``gpu_node_labels`` and ``gpu_taint``, output ``gpu_tolerations``) label and taint
the nodes; the KFP train step (:mod:`hairseg_pipelines.training`) selects and tolerates
them from these values; the KServe GPU overlay (``serving/manifests/overlays/gpu``) does the
same in YAML. HCL and kustomize cannot import Python, so
``tests/infra/test_gpu_node_contract.py`` checks that they say exactly this.
"""

from __future__ import annotations

__all__ = ["GPU_RESOURCE", "NODE_LABEL", "TAINT", "TOLERATION"]

# The extended resource the NVIDIA device plugin advertises (requests/limits).
GPU_RESOURCE = "nvidia.com/gpu"
# The label every GPU node carries and a GPU pod's nodeSelector names.
NODE_LABEL = ("hairseg.io/accelerator", "nvidia-gpu")
# The taint that keeps everything else off the GPU nodes ...
TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
# ... and the toleration (Kubernetes field names) that lets a GPU pod on.
TOLERATION = {
    "key": TAINT["key"],
    "operator": "Equal",
    "value": TAINT["value"],
    "effect": TAINT["effect"],
}
