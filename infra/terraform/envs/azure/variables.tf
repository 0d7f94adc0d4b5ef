# This cloud's inputs; those every cloud shares are in variables_shared.tf.

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

variable "create_database" {
  type        = bool
  description = "Create PostgreSQL Flexible Server for MLflow."
  default     = true
}

