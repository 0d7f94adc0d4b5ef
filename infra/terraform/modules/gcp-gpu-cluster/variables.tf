variable "name" {
  type        = string
  description = "Cluster name; also the prefix of the network, service accounts, bucket and registry."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 characters of lower-case letters, digits and '-', starting with a letter (service account IDs are limited to 30)."
  }
}

variable "project_id" {
  type        = string
  description = "GCP project the cluster is created in."
}

variable "region" {
  type        = string
  description = "GCP region of the regional cluster, bucket and registry."
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource that takes labels."
  default     = {}
}

variable "kubernetes_release_channel" {
  type        = string
  description = "GKE release channel (the channel picks the Kubernetes version)."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.kubernetes_release_channel)
    error_message = "kubernetes_release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the cluster and the Cloud SQL instance from terraform destroy; set false before tearing down."
  default     = true
}

# --- network -----------------------------------------------------------------

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the node subnet."
  default     = "10.50.0.0/20"
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range for pod IPs (VPC-native cluster)."
  default     = "10.52.0.0/14"
}

variable "services_cidr" {
  type        = string
  description = "Secondary range for service IPs."
  default     = "10.56.0.0/20"
}

variable "master_ipv4_cidr_block" {
  type        = string
  description = "/28 range for the private control plane endpoint."
  default     = "172.16.0.0/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr_block, 0)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "master_ipv4_cidr_block must be a /28."
  }
}

variable "enable_private_endpoint" {
  type        = bool
  description = "Make the control plane reachable only on its private IP (you then need a bastion or VPN to run terraform for the platform)."
  default     = false
}

variable "master_authorized_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the control plane endpoint (office/VPN/CI egress). No 0.0.0.0/0."

  validation {
    condition     = length(var.master_authorized_cidrs) > 0 && alltrue([for c in var.master_authorized_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "master_authorized_cidrs needs at least one valid CIDR and must not contain 0.0.0.0/0."
  }
}

# --- node pools --------------------------------------------------------------

variable "system_machine_type" {
  type        = string
  description = "Machine type of the system pool."
  default     = "e2-standard-4"
}

variable "system_nodes_per_zone" {
  type = object({
    min = number
    max = number
  })
  description = "Autoscaling bounds of the system pool, per zone (a regional cluster has 3 zones)."
  default     = { min = 1, max = 2 }

  validation {
    condition     = var.system_nodes_per_zone.min >= 1 && var.system_nodes_per_zone.min <= var.system_nodes_per_zone.max
    error_message = "system_nodes_per_zone needs 1 <= min <= max."
  }
}

variable "gpu_machine_type" {
  type        = string
  description = "Machine type of GPU nodes: n1-standard-4 (+ nvidia-tesla-t4) or g2-standard-4 (nvidia-l4)."
  default     = "n1-standard-4"
}

variable "gpu_accelerator_type" {
  type        = string
  description = "GPU attached to each GPU node."
  default     = "nvidia-tesla-t4"

  validation {
    condition     = contains(["nvidia-tesla-t4", "nvidia-l4", "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb"], var.gpu_accelerator_type)
    error_message = "gpu_accelerator_type must be one of nvidia-tesla-t4, nvidia-l4, nvidia-tesla-a100, nvidia-a100-80gb, nvidia-h100-80gb."
  }
}

variable "gpu_zones" {
  type        = list(string)
  description = "Zones of the GPU pool (GPU types exist only in some zones of a region); empty = the cluster's zones."
  default     = []
}

variable "gpu_max_nodes" {
  type        = number
  description = "Upper bound of the GPU pool across its zones. It always scales back to 0."
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes as Spot VMs (cheaper, preemptible)."
  default     = false
}

variable "node_disk_size_gb" {
  type        = number
  description = "Boot disk size of every node."
  default     = 100
}

# --- identities, storage, registry, database ---------------------------------

variable "workload_identities" {
  type = map(object({
    namespace       = string
    service_account = string
    bucket_access   = string
  }))
  description = "Kubernetes service accounts bound (Workload Identity) to a Google service account with bucket access \"read\" or \"readwrite\"."
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

variable "force_destroy_bucket" {
  type        = bool
  description = "Allow terraform destroy to delete a non-empty artifact bucket."
  default     = false
}

variable "artifact_noncurrent_version_days" {
  type        = number
  description = "Days a superseded object version is kept before deletion."
  default     = 90
}

variable "create_database" {
  type        = bool
  description = "Create a private Cloud SQL PostgreSQL instance for the MLflow backend store."
  default     = true
}

variable "database_tier" {
  type        = string
  description = "Cloud SQL machine tier of the MLflow database."
  default     = "db-custom-1-3840"
}

variable "database_version" {
  type        = string
  description = "Cloud SQL PostgreSQL version."
  default     = "POSTGRES_16"
}
