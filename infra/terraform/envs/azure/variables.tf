variable "name" {
  type        = string
  description = "Cluster name and resource prefix."
  default     = "hairseg"
}

variable "subscription_id" {
  type        = string
  description = "Azure subscription ID (azurerm 4.x requires it explicitly)."
}

variable "location" {
  type        = string
  description = "Azure region."
  default     = "westeurope"
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDRs allowed to reach the AKS API (where terraform and kubectl run from)."
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups with cluster-admin. The identity running terraform also needs 'Azure Kubernetes Service RBAC Cluster Admin' for the platform step."
  default     = []
}

variable "gpu_vm_size" {
  type        = string
  description = "GPU VM size."
  default     = "Standard_NC4as_T4_v3"
}

variable "gpu_max_nodes" {
  type        = number
  description = "Upper bound of the GPU pool (it scales from 0)."
  default     = 4
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes as Spot VMs."
  default     = false
}

variable "create_database" {
  type        = bool
  description = "Create PostgreSQL Flexible Server for MLflow."
  default     = true
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
