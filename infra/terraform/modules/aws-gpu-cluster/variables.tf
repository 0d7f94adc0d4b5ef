variable "name" {
  type        = string
  description = "Cluster name; also the prefix of every resource name (VPC, roles, bucket, registry)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "AWS region the cluster runs in (used in outputs such as the exec-auth args and the registry URL)."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource that takes tags."
  default     = {}
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes minor version, e.g. \"1.32\"."
  default     = "1.32"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like \"1.32\"."
  }
}

# --- network -------------------------------------------------------------

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the new VPC; /16 leaves room for three /20 private and three /24 public subnets."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zone_count" {
  type        = number
  description = "How many availability zones to spread subnets over (EKS needs at least 2)."
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 4
    error_message = "availability_zone_count must be between 2 and 4."
  }
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for all private subnets (cheaper) instead of one per zone (zone-redundant)."
  default     = true
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the EKS API endpoint publicly (restricted to endpoint_public_access_cidrs). The private endpoint is always on."
  default     = true
}

variable "endpoint_public_access_cidrs" {
  type        = list(string)
  description = "CIDRs allowed to reach the public EKS API endpoint: your office/VPN egress ranges. No 0.0.0.0/0 default."
  default     = []

  validation {
    condition     = alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "endpoint_public_access_cidrs must be valid CIDRs and must not contain 0.0.0.0/0."
  }
}

variable "cluster_log_types" {
  type        = list(string)
  description = "EKS control-plane log types sent to CloudWatch (all five by default)."
  default     = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
}

variable "cluster_log_retention_days" {
  type        = number
  description = "Retention of the control-plane and flow-log CloudWatch log groups, in days."
  default     = 365
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the KMS keys (EKS secrets, bucket, logs) are deleted."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# --- node groups ---------------------------------------------------------

variable "system_instance_types" {
  type        = list(string)
  description = "Instance types of the system node group (platform controllers, MLflow, Redis, KFP)."
  default     = ["m6i.large"]
}

variable "system_node_count" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the always-on system node group."
  default     = { min = 2, desired = 2, max = 4 }

  validation {
    condition     = var.system_node_count.min >= 1 && var.system_node_count.min <= var.system_node_count.desired && var.system_node_count.desired <= var.system_node_count.max
    error_message = "system_node_count needs 1 <= min <= desired <= max."
  }
}

variable "gpu_instance_types" {
  type        = list(string)
  description = "GPU instance types (one NVIDIA GPU each is assumed by the autoscaler hint), e.g. g4dn.xlarge (T4) or g5.xlarge (A10G)."
  default     = ["g4dn.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|p3|p4d|p5)\\.", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU families (g4dn, g5, g6, g6e, p3, p4d, p5)."
  }
}

variable "gpu_max_nodes" {
  type        = number
  description = "Upper bound of the GPU node group. It always starts and scales back to 0."
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_spot" {
  type        = bool
  description = "Run GPU nodes on Spot capacity (cheaper, can be reclaimed with 2 minutes notice)."
  default     = false
}

variable "gpu_ami_type" {
  type        = string
  description = "EKS AMI type for GPU nodes; the NVIDIA variants ship the driver and container toolkit."
  default     = "AL2023_x86_64_NVIDIA"

  validation {
    condition     = contains(["AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "AL2_x86_64_GPU"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be AL2023_x86_64_NVIDIA, BOTTLEROCKET_x86_64_NVIDIA or AL2_x86_64_GPU."
  }
}

variable "node_disk_size_gb" {
  type        = number
  description = "Root volume size of every node (GPU images and CUDA layers are large)."
  default     = 100
}

# --- identities, storage, registry, database -----------------------------

variable "workload_identities" {
  type = map(object({
    namespace       = string
    service_account = string
    bucket_access   = string
  }))
  description = "Kubernetes service accounts that get an IAM role (IRSA) for the artifact bucket; bucket_access is \"read\" or \"readwrite\". Keys become part of the role names and the output map."
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

variable "oidc_thumbprints" {
  type        = list(string)
  description = "Thumbprints for the IAM OIDC provider. AWS no longer checks them for EKS issuers (it trusts its own CA), so an empty list is fine; set one to satisfy older tooling."
  default     = []
}

variable "force_destroy_bucket" {
  type        = bool
  description = "Allow terraform destroy to delete a non-empty artifact bucket (only for throw-away environments)."
  default     = false
}

variable "artifact_noncurrent_version_days" {
  type        = number
  description = "Days a superseded object version is kept in the artifact bucket before it expires."
  default     = 90
}

variable "create_database" {
  type        = bool
  description = "Create an RDS PostgreSQL instance for the MLflow backend store."
  default     = true
}

variable "database_instance_class" {
  type        = string
  description = "RDS instance class of the MLflow database."
  default     = "db.t4g.micro"
}

variable "database_engine_version" {
  type        = string
  description = "PostgreSQL major version of the MLflow database."
  default     = "16"
}

variable "database_allocated_storage_gb" {
  type        = number
  description = "Initial storage of the MLflow database (it autoscales up to 5x)."
  default     = 20
}

variable "database_multi_az" {
  type        = bool
  description = "Multi-AZ RDS deployment (doubles the database cost)."
  default     = false
}

variable "database_performance_insights" {
  type        = bool
  description = "Enable Performance Insights (7 days free); turn off if RDS rejects it for a small instance class."
  default     = true
}

variable "database_deletion_protection" {
  type        = bool
  description = "Protect the MLflow database from deletion; set false before terraform destroy."
  default     = true
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM role/user ARNs given cluster-admin through EKS access entries (the creator of the cluster is admin already)."
  default     = []
}

variable "ecr_repositories" {
  type        = list(string)
  description = "ECR repositories to create (the predictor image and the KFP component image)."
  default     = ["hairseg-predictor", "hairseg-components"]
}
