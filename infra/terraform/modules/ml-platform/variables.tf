# --- from the cluster module ------------------------------------------------

variable "cluster" {
  type = object({
    cloud                  = string
    cluster_endpoint       = string
    cluster_ca_certificate = string
    kubernetes_exec_auth = object({
      api_version = string
      command     = string
      args        = list(string)
      env         = map(string)
    })
    gpu_node_selector = map(string)
    gpu_tolerations = list(object({
      key      = string
      operator = string
      value    = string
      effect   = string
    }))
    system_node_selector       = map(string)
    gpu_device_plugin_required = bool
    cluster_autoscaler = object({
      enabled                     = bool
      cloud_provider              = string
      cluster_name                = string
      region                      = string
      service_account_annotations = map(string)
    })
    artifact_bucket_name = string
    artifact_bucket_uri  = string
    object_store_env     = map(string)
    workload_identities = map(object({
      namespace       = string
      service_account = string
      annotations     = map(string)
      pod_labels      = map(string)
    }))
    mlflow_database = object({
      enabled  = bool
      host     = string
      port     = number
      database = string
      username = string
      sslmode  = string
    })
    mlflow_database_password = string
  })
  description = <<-EOT
    The cluster contract: pass a *-gpu-cluster module whole (cluster = module.cluster);
    Terraform keeps the attributes named here and drops the rest. cloud (aws, gcp, azure)
    picks the MLflow artifact store flavour; the API server endpoint, CA and exec plugin
    feed the kubectl step that installs Kubeflow Pipelines; the GPU node selector and
    tolerations pin the device plugin; system_node_selector places platform controllers;
    gpu_device_plugin_required and cluster_autoscaler say what to install (the autoscaler
    only when enabled, EKS); the artifact bucket (s3://, gs:// or wasbs://) holds MLflow
    artifacts and the KFP pipeline root; workload_identities needs pipelines, mlflow and
    serving; mlflow_database(_password) is the MLflow backend store (the password stays
    sensitive: it is a sensitive output of the cluster module).
  EOT

  validation {
    condition     = contains(["aws", "gcp", "azure"], var.cluster.cloud)
    error_message = "cluster.cloud must be aws, gcp or azure."
  }

  validation {
    condition     = alltrue([for k in ["pipelines", "mlflow", "serving"] : contains(keys(var.cluster.workload_identities), k)])
    error_message = "cluster.workload_identities needs the keys pipelines, mlflow and serving."
  }
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

variable "versions" {
  type = object({
    cert_manager         = optional(string, "v1.16.3") # jetstack/cert-manager chart
    knative_operator     = optional(string, "v1.16.0") # knative-operator chart (https://knative.github.io/operator)
    knative_serving      = optional(string, "1.16")    # Knative Serving the operator installs (major.minor, within 3 minors of the operator)
    kserve               = optional(string, "v0.15.2") # oci://ghcr.io/kserve/charts/kserve-crd and kserve
    kubeflow_pipelines   = optional(string, "2.4.1")   # git tag of kubeflow/pipelines, applied with kubectl apply -k
    mlflow_chart         = optional(string, "1.12.0")  # community-charts/mlflow
    redis_chart          = optional(string, "20.6.3")  # bitnami redis (oci://registry-1.docker.io/bitnamicharts)
    nvidia_device_plugin = optional(string, "0.17.0")  # NVIDIA k8s-device-plugin chart
    cluster_autoscaler   = optional(string, "9.45.0")  # kubernetes/autoscaler cluster-autoscaler chart (match the Kubernetes minor)
  })
  description = "Pinned versions of what the module installs; set only the ones to change, e.g. versions = { kserve = \"v0.15.2\" }. The output installed_versions reports them."
  default     = {}

  validation {
    condition     = can(regex("^2\\.[0-9]+\\.[0-9]+$", var.versions.kubeflow_pipelines))
    error_message = "versions.kubeflow_pipelines must be a KFP 2.x release tag such as 2.4.1."
  }
}

variable "redis_image_repository" {
  type        = string
  description = "Redis image for the bitnami chart: bitnamilegacy/redis matches the pinned chart's tags; point it at your own mirror for patched builds."
  default     = "bitnamilegacy/redis"
}
