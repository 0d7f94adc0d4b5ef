# The GPU node contract, linked (not copied) into modules/aws-gpu-cluster,
# modules/gcp-gpu-cluster and modules/azure-gpu-cluster as gpu_node_contract.tf:
# the labels and taint every GPU node carries and the outputs a pod uses to land
# on one. hairseg.gpu_nodes is the same contract in Python, for the KFP train step
# and the KServe GPU overlay; tests/infra/test_gpu_node_contract.py checks they agree.
# Each module defines local.gpu_taints: local.gpu_taint plus any taint its cloud
# puts on the pool itself (Azure: the Spot taint).

locals {
  gpu_node_labels = {
    "hairseg.io/accelerator" = "nvidia-gpu"
    "nvidia.com/gpu.present" = "true"
  }
  gpu_taint          = { key = "nvidia.com/gpu", value = "present", effect = "NoSchedule" }
  system_node_labels = { "hairseg.io/pool" = "system" }
}

output "gpu_node_selector" {
  description = "nodeSelector that puts a pod on a GPU node (same on every cloud)."
  value       = { "hairseg.io/accelerator" = local.gpu_node_labels["hairseg.io/accelerator"] }
}

output "gpu_node_labels" {
  description = "All labels the module puts on GPU nodes (a cloud may add its own, e.g. GKE's cloud.google.com/gke-accelerator)."
  value       = local.gpu_node_labels
}

output "gpu_tolerations" {
  description = "Tolerations a GPU pod needs (Kubernetes field names: key, operator, value, effect); on Azure with gpu_spot, the Spot taint too."
  value = [for t in local.gpu_taints : {
    key      = t.key
    operator = "Equal"
    value    = t.value
    effect   = t.effect
  }]
}

output "system_node_selector" {
  description = "nodeSelector of the always-on system pool (platform controllers)."
  value       = local.system_node_labels
}
