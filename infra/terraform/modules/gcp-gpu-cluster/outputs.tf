# Same output names and shapes as modules/aws-gpu-cluster and
# modules/azure-gpu-cluster (checked by tests/infra/test_hcl_conventions.py).
# The GPU node outputs (gpu_node_selector, gpu_node_labels, gpu_tolerations,
# system_node_selector) are in gpu_node_contract.tf, shared by the three modules.

output "cloud" {
  description = "Which cloud this cluster runs on: aws, gcp or azure."
  value       = "gcp"
}

output "region" {
  description = "Region of the cluster."
  value       = var.region
}

output "cluster_name" {
  description = "Kubernetes cluster name."
  value       = google_container_cluster.this.name
}

output "cluster_endpoint" {
  description = "HTTPS URL of the Kubernetes API server."
  value       = "https://${google_container_cluster.this.endpoint}"
}

output "cluster_ca_certificate" {
  description = "Base64-encoded PEM CA certificate of the API server."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "kubernetes_exec_auth" {
  description = "Exec credential plugin for the kubernetes/helm providers: api_version, command, args, env."
  value = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "gke-gcloud-auth-plugin"
    args        = []
    env         = {}
  }
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for this cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --region ${var.region} --project ${var.project_id}"
}

output "gpu_device_plugin_required" {
  description = "Whether the platform must install the NVIDIA device plugin (GKE installs its own: false)."
  value       = false
}

output "cluster_autoscaler" {
  description = "Settings for an in-cluster cluster-autoscaler; enabled = false where the cloud autoscales node pools itself."
  value = {
    enabled                     = false
    cloud_provider              = "gce"
    cluster_name                = google_container_cluster.this.name
    region                      = var.region
    service_account_annotations = {}
  }
}

output "artifact_bucket_name" {
  description = "Name of the artifact bucket (MLflow artifacts, KFP pipeline root, model files)."
  value       = google_storage_bucket.artifacts.name
}

output "artifact_bucket_uri" {
  description = "URI of the artifact bucket as MLflow, KFP and KServe storageUri expect it."
  value       = "gs://${google_storage_bucket.artifacts.name}"
}

output "object_store_env" {
  description = "Environment variables pods need to reach the artifact bucket with their workload identity."
  value = {
    GOOGLE_CLOUD_PROJECT = var.project_id
  }
}

output "container_registry_url" {
  description = "Registry host and prefix images are pushed to: <registry>/<image>:<tag>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}"
}

output "workload_identities" {
  description = "Per workload (pipelines, mlflow, serving): namespace, service account, and the annotations/pod labels that bind it to its cloud identity."
  value = {
    for k, v in var.workload_identities : k => {
      namespace       = v.namespace
      service_account = v.service_account
      annotations     = { "iam.gke.io/gcp-service-account" = google_service_account.workload[k].email }
      pod_labels      = {}
    }
  }
}

output "mlflow_database" {
  description = "Connection of the MLflow backend store (enabled = false when no managed database was created)."
  value = {
    enabled  = var.create_database
    host     = var.create_database ? google_sql_database_instance.mlflow[0].private_ip_address : ""
    port     = 5432
    database = var.create_database ? google_sql_database.mlflow[0].name : ""
    username = var.create_database ? google_sql_user.mlflow[0].name : ""
    sslmode  = "require"
  }
}

output "mlflow_database_password" {
  description = "Password of the MLflow database user (empty when no database)."
  value       = var.create_database ? random_password.mlflow_db[0].result : ""
  sensitive   = true
}
