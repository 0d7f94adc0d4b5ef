# --- from the cluster module (same names as its outputs) ---------------------

variable "cloud" {
  type        = string
  description = "Cloud of the cluster (cluster module output `cloud`): aws, gcp or azure. Picks the MLflow artifact store flavour."

  validation {
    condition     = contains(["aws", "gcp", "azure"], var.cloud)
    error_message = "cloud must be aws, gcp or azure."
  }
}

variable "cluster_endpoint" {
  type        = string
  description = "API server URL (cluster module output); used for the kubectl step that installs Kubeflow Pipelines."
}

variable "cluster_ca_certificate" {
  type        = string
  description = "Base64 PEM CA of the API server (cluster module output)."
}

variable "kubernetes_exec_auth" {
  type = object({
    api_version = string
    command     = string
    args        = list(string)
    env         = map(string)
  })
  description = "Exec credential plugin (cluster module output); written into the temporary kubeconfig of the kubectl step."
}

variable "gpu_node_selector" {
  type        = map(string)
  description = "nodeSelector of GPU nodes (cluster module output); the device plugin is pinned there."
}

variable "gpu_tolerations" {
  type = list(object({
    key      = string
    operator = string
    value    = string
    effect   = string
  }))
  description = "Tolerations of the GPU taint (cluster module output)."
}

variable "system_node_selector" {
  type        = map(string)
  description = "nodeSelector of the system pool (cluster module output); platform controllers run there."
}

variable "gpu_device_plugin_required" {
  type        = bool
  description = "Install the NVIDIA device plugin (cluster module output; false on GKE, which manages its own)."
}

variable "cluster_autoscaler" {
  type = object({
    enabled                     = bool
    cloud_provider              = string
    cluster_name                = string
    region                      = string
    service_account_annotations = map(string)
  })
  description = "Cluster-autoscaler settings (cluster module output); installed only when enabled (EKS)."
}

variable "artifact_bucket_name" {
  type        = string
  description = "Artifact bucket or container name (cluster module output)."
}

variable "artifact_bucket_uri" {
  type        = string
  description = "Artifact bucket URI, s3://, gs:// or wasbs:// (cluster module output); MLflow and the KFP pipeline root live under it."
}

variable "object_store_env" {
  type        = map(string)
  description = "Environment variables pods need for the artifact store (cluster module output)."
}

variable "workload_identities" {
  type = map(object({
    namespace       = string
    service_account = string
    annotations     = map(string)
    pod_labels      = map(string)
  }))
  description = "Workload identities (cluster module output); keys pipelines, mlflow and serving are used."

  validation {
    condition     = alltrue([for k in ["pipelines", "mlflow", "serving"] : contains(keys(var.workload_identities), k)])
    error_message = "workload_identities needs the keys pipelines, mlflow and serving."
  }
}

variable "mlflow_database" {
  type = object({
    enabled  = bool
    host     = string
    port     = number
    database = string
    username = string
    sslmode  = string
  })
  description = "MLflow backend store connection (cluster module output)."
}

variable "mlflow_database_password" {
  type        = string
  description = "Password of the MLflow database user (cluster module output)."
  sensitive   = true
}

# --- what to install ------------------------------------------------------

variable "install_kubeflow_pipelines" {
  type        = bool
  description = "Install Kubeflow Pipelines standalone with kubectl apply -k (needs kubectl and git where terraform runs)."
  default     = true
}

variable "serving_domain" {
  type        = string
  description = "Domain of Knative/KServe routes: an InferenceService gets http://<name>.<namespace>.<domain>. Use a domain you point at the ingress, or sslip.io."
  default     = "example.com"
}

variable "ingress_service_annotations" {
  type        = map(string)
  description = "Annotations on the Kourier LoadBalancer service (e.g. internal NLB on AWS, internal LB on Azure/GCP)."
  default     = {}
}

variable "redis_persistence_size" {
  type        = string
  description = "PVC size of the Redis that backs the Feast online store."
  default     = "8Gi"
}

# --- pinned versions ---------------------------------------------------------

variable "cert_manager_version" {
  type        = string
  description = "jetstack/cert-manager chart version."
  default     = "v1.16.3"
}

variable "knative_operator_version" {
  type        = string
  description = "knative-operator chart version (https://knative.github.io/operator)."
  default     = "v1.16.0"
}

variable "knative_serving_version" {
  type        = string
  description = "Knative Serving version the operator installs (major.minor, within 3 minors of the operator)."
  default     = "1.16"
}

variable "kserve_version" {
  type        = string
  description = "KServe chart version of oci://ghcr.io/kserve/charts/kserve-crd and kserve."
  default     = "v0.15.2"
}

variable "kfp_version" {
  type        = string
  description = "Kubeflow Pipelines release (git tag of kubeflow/pipelines) applied with kubectl apply -k."
  default     = "2.4.1"

  validation {
    condition     = can(regex("^2\\.[0-9]+\\.[0-9]+$", var.kfp_version))
    error_message = "kfp_version must be a KFP 2.x release tag such as 2.4.1."
  }
}

variable "mlflow_chart_version" {
  type        = string
  description = "community-charts/mlflow chart version."
  default     = "1.12.0"
}

variable "redis_chart_version" {
  type        = string
  description = "bitnami redis chart version (oci://registry-1.docker.io/bitnamicharts)."
  default     = "20.6.3"
}

variable "redis_image_repository" {
  type        = string
  description = "Redis image for the bitnami chart: bitnamilegacy/redis matches the pinned chart's tags; point it at your own mirror for patched builds."
  default     = "bitnamilegacy/redis"
}

variable "nvidia_device_plugin_version" {
  type        = string
  description = "NVIDIA k8s-device-plugin chart version."
  default     = "0.17.0"
}

variable "cluster_autoscaler_chart_version" {
  type        = string
  description = "kubernetes/autoscaler cluster-autoscaler chart version (match it to the Kubernetes minor)."
  default     = "9.45.0"
}
