# This cloud's inputs; those every cloud shares are in variables_shared.tf.

variable "project_id" {
  type        = string
  description = "GCP project ID."
}

variable "region" {
  type        = string
  description = "GCP region."
  default     = "europe-west4"
}

variable "master_authorized_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the GKE control plane (where terraform and kubectl run from)."
}

variable "gpu_machine_type" {
  type        = string
  description = "GPU node machine type: n1-standard-4 with a T4, or g2-standard-4 (L4)."
  default     = "n1-standard-4"
}

variable "gpu_accelerator_type" {
  type        = string
  description = "GPU type: nvidia-tesla-t4 (n1) or nvidia-l4 (g2)."
  default     = "nvidia-tesla-t4"
}

variable "gpu_zones" {
  type        = list(string)
  description = "Zones with the GPU type in stock; empty = all cluster zones."
  default     = []
}

variable "create_database" {
  type        = bool
  description = "Create Cloud SQL PostgreSQL for MLflow."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the cluster and database from destroy (set false before teardown)."
  default     = true
}

