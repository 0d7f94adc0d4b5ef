variable "name" {
  type        = string
  description = "Cluster name; also the prefix of the resource group, VNet, identities and registry."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource that takes tags."
  default     = {}
}

variable "kubernetes_version" {
  type        = string
  description = "AKS Kubernetes version (major.minor; patches follow the automatic upgrade channel)."
  default     = "1.32"
}

variable "sku_tier" {
  type        = string
  description = "AKS control plane tier: Free (no SLA) or Standard (uptime SLA, billed per cluster hour)."
  default     = "Standard"

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "sku_tier must be Free, Standard or Premium."
  }
}

# --- network -------------------------------------------------------------------

variable "vnet_cidr" {
  type        = string
  description = "Address space of the VNet."
  default     = "10.60.0.0/16"
}

variable "nodes_subnet_cidr" {
  type        = string
  description = "Subnet of the AKS nodes (pods use an overlay network)."
  default     = "10.60.0.0/20"
}

variable "database_subnet_cidr" {
  type        = string
  description = "Subnet delegated to PostgreSQL Flexible Server."
  default     = "10.60.16.0/24"
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDRs allowed to reach the public API server (office/VPN/CI egress). No 0.0.0.0/0."

  validation {
    condition     = length(var.api_server_authorized_ip_ranges) > 0 && alltrue([for c in var.api_server_authorized_ip_ranges : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "api_server_authorized_ip_ranges needs at least one valid CIDR and must not contain 0.0.0.0/0."
  }
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups that get cluster-admin through Azure RBAC for Kubernetes."
  default     = []
}

# --- node pools --------------------------------------------------------------

variable "system_vm_size" {
  type        = string
  description = "VM size of the system pool."
  default     = "Standard_D4s_v5"
}

variable "system_node_count" {
  type = object({
    min = number
    max = number
  })
  description = "Autoscaling bounds of the system pool."
  default     = { min = 2, max = 4 }

  validation {
    condition     = var.system_node_count.min >= 1 && var.system_node_count.min <= var.system_node_count.max
    error_message = "system_node_count needs 1 <= min <= max."
  }
}

variable "gpu_vm_size" {
  type        = string
  description = "VM size of GPU nodes, e.g. Standard_NC4as_T4_v3 (1x T4) or Standard_NV36ads_A10_v5."
  default     = "Standard_NC4as_T4_v3"

  validation {
    condition     = can(regex("^Standard_N", var.gpu_vm_size))
    error_message = "gpu_vm_size must be an N-series (GPU) size."
  }
}

variable "gpu_max_nodes" {
  type        = number
  description = "Upper bound of the GPU pool. It always scales back to 0."
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes as Spot VMs (evicted with 30 seconds notice; max price = on-demand price)."
  default     = false
}

variable "gpu_zones" {
  type        = list(string)
  description = "Availability zones of the GPU pool (GPU sizes exist only in some zones); empty = no zone pinning."
  default     = []
}

variable "node_disk_size_gb" {
  type        = number
  description = "OS disk size of every node."
  default     = 128
}

# --- identities, storage, registry, database ---------------------------------

variable "workload_identities" {
  type = map(object({
    namespace       = string
    service_account = string
    bucket_access   = string
  }))
  description = "Kubernetes service accounts federated to a user-assigned identity with blob access \"read\" or \"readwrite\" on the artifact container."
  default = {
    pipelines = { namespace = "kubeflow", service_account = "pipeline-runner", bucket_access = "readwrite" }
    mlflow    = { namespace = "mlflow", service_account = "mlflow", bucket_access = "readwrite" }
    serving   = { namespace = "hairseg-serving", service_account = "hairseg-predictor", bucket_access = "read" }
  }

  validation {
    condition     = alltrue([for k, v in var.workload_identities : contains(["read", "readwrite"], v.bucket_access)])
    error_message = "Every workload_identities entry needs bucket_access \"read\" or \"readwrite\"."
  }
}

variable "storage_replication" {
  type        = string
  description = "Replication of the artifact storage account (LRS, ZRS, GRS, ...)."
  default     = "ZRS"
}

variable "acr_sku" {
  type        = string
  description = "Container registry SKU (Premium adds private endpoints and geo-replication)."
  default     = "Standard"
}

variable "create_database" {
  type        = bool
  description = "Create a VNet-integrated PostgreSQL Flexible Server for the MLflow backend store."
  default     = true
}

variable "database_sku" {
  type        = string
  description = "PostgreSQL Flexible Server SKU."
  default     = "B_Standard_B1ms"
}

variable "database_version" {
  type        = string
  description = "PostgreSQL major version."
  default     = "16"
}
