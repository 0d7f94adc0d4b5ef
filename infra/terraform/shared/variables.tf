# Shared by every env root (each envs/<cloud>/variables_shared.tf links here): the
# inputs every cloud takes alike. Cloud-specific inputs are in envs/<cloud>/variables.tf.

variable "name" {
  type        = string
  description = "Cluster name and resource prefix."
  default     = "hairseg"
}

variable "gpu_max_nodes" {
  type        = number
  description = "Upper bound of the GPU node pool (it scales from 0)."
  default     = 4
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes on Spot capacity (Spot instances / Spot VMs)."
  default     = false
}

variable "serving_domain" {
  type        = string
  description = "Domain of KServe routes (<isvc>.<namespace>.<domain>)."
  default     = "example.com"
}

variable "install_kubeflow_pipelines" {
  type        = bool
  description = "Install Kubeflow Pipelines (needs kubectl and git where terraform runs)."
  default     = true
}
