# This cloud's inputs; those every cloud shares are in variables_shared.tf.

variable "region" {
  type        = string
  description = "AWS region."
  default     = "eu-west-1"
}

variable "endpoint_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the EKS API (where terraform and kubectl run from)."
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "Extra IAM principals (e.g. the CI role) that get cluster-admin."
  default     = []
}

variable "gpu_instance_types" {
  type        = list(string)
  description = "GPU instance types of the GPU node group."
  default     = ["g4dn.xlarge"]
}

variable "create_database" {
  type        = bool
  description = "Create RDS PostgreSQL for MLflow (false: MLflow falls back to the chart's embedded SQLite)."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the RDS database from deletion (set false before terraform destroy)."
  default     = true
}

variable "tags" {
  type        = map(string)
  description = "Tags on every AWS resource."
  default     = { project = "hairseg" }
}
