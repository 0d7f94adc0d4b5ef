# Same output names and shapes as modules/aws-gpu-cluster and
# modules/gcp-gpu-cluster (checked by tests/infra/test_hcl_conventions.py).
# The GPU node outputs (gpu_node_selector, gpu_node_labels, gpu_tolerations,
# system_node_selector) are in gpu_node_contract.tf, shared by the three modules.

output "cloud" {
  description = "Which cloud this cluster runs on: aws, gcp or azure."
  value       = "azure"
}

output "region" {
  description = "Region of the cluster."
  value       = var.location
}

output "cluster_name" {
  description = "Kubernetes cluster name."
  value       = azurerm_kubernetes_cluster.this.name
}

output "cluster_endpoint" {
  description = "HTTPS URL of the Kubernetes API server."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].host
}

output "cluster_ca_certificate" {
  description = "Base64-encoded PEM CA certificate of the API server."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].cluster_ca_certificate
}

output "kubernetes_exec_auth" {
  description = "Exec credential plugin for the kubernetes/helm providers: api_version, command, args, env."
  value = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "kubelogin"
    # 6dae42f8-... is the fixed application ID of the AKS AAD server.
    args = ["get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"]
    env  = {}
  }
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for this cluster."
  value       = "az aks get-credentials --resource-group ${azurerm_resource_group.this.name} --name ${azurerm_kubernetes_cluster.this.name} && kubelogin convert-kubeconfig -l azurecli"
}

output "gpu_device_plugin_required" {
  description = "Whether the platform must install the NVIDIA device plugin (AKS installs the driver, not the plugin: true)."
  value       = true
}

output "cluster_autoscaler" {
  description = "Settings for an in-cluster cluster-autoscaler; enabled = false where the cloud autoscales node pools itself."
  value = {
    enabled                     = false
    cloud_provider              = "azure"
    cluster_name                = azurerm_kubernetes_cluster.this.name
    region                      = var.location
    service_account_annotations = {}
  }
}

output "artifact_bucket_name" {
  description = "Name of the artifact bucket (MLflow artifacts, KFP pipeline root, model files)."
  value       = azurerm_storage_container.artifacts.name
}

output "artifact_bucket_uri" {
  description = "URI of the artifact bucket as MLflow, KFP and KServe storageUri expect it."
  value       = "wasbs://${azurerm_storage_container.artifacts.name}@${azurerm_storage_account.artifacts.name}.blob.core.windows.net"
}

output "object_store_env" {
  description = "Environment variables pods need to reach the artifact bucket with their workload identity."
  value = {
    AZURE_STORAGE_ACCOUNT_NAME = azurerm_storage_account.artifacts.name
    AZURE_STORAGE_ACCOUNT      = azurerm_storage_account.artifacts.name
  }
}

output "container_registry_url" {
  description = "Registry host and prefix images are pushed to: <registry>/<image>:<tag>."
  value       = azurerm_container_registry.this.login_server
}

output "workload_identities" {
  description = "Per workload (pipelines, mlflow, serving): namespace, service account, and the annotations/pod labels that bind it to its cloud identity."
  value = {
    for k, v in var.workload_identities : k => {
      namespace       = v.namespace
      service_account = v.service_account
      annotations     = { "azure.workload.identity/client-id" = azurerm_user_assigned_identity.workload[k].client_id }
      pod_labels      = { "azure.workload.identity/use" = "true" }
    }
  }
}

output "mlflow_database" {
  description = "Connection of the MLflow backend store (enabled = false when no managed database was created)."
  value = {
    enabled  = var.create_database
    host     = var.create_database ? azurerm_postgresql_flexible_server.mlflow[0].fqdn : ""
    port     = 5432
    database = var.create_database ? azurerm_postgresql_flexible_server_database.mlflow[0].name : ""
    username = var.create_database ? azurerm_postgresql_flexible_server.mlflow[0].administrator_login : ""
    sslmode  = "require"
  }
}

output "mlflow_database_password" {
  description = "Password of the MLflow database user (empty when no database)."
  value       = var.create_database ? random_password.mlflow_db[0].result : ""
  sensitive   = true
}
