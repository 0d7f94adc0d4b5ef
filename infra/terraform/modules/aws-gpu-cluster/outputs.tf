# The cluster contract: the GCP and Azure modules export the same output names
# with the same shapes, so envs/* and modules/ml-platform never branch on cloud.
# tests/infra/test_hcl_conventions.py checks the names are identical.
# The GPU node outputs (gpu_node_selector, gpu_node_labels, gpu_tolerations,
# system_node_selector) are in gpu_node_contract.tf, shared by the three modules.

output "cloud" {
  description = "Which cloud this cluster runs on: aws, gcp or azure."
  value       = "aws"
}

output "region" {
  description = "Region of the cluster."
  value       = var.region
}

output "cluster_name" {
  description = "Kubernetes cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "HTTPS URL of the Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_ca_certificate" {
  description = "Base64-encoded PEM CA certificate of the API server."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "kubernetes_exec_auth" {
  description = "Exec credential plugin for the kubernetes/helm providers: api_version, command, args, env."
  value = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.this.name, "--region", var.region, "--output", "json"]
    env         = {}
  }
}

output "kubeconfig_command" {
  description = "Command that writes a kubeconfig entry for this cluster."
  value       = "aws eks update-kubeconfig --name ${aws_eks_cluster.this.name} --region ${var.region}"
}

output "gpu_device_plugin_required" {
  description = "Whether the platform must install the NVIDIA device plugin (EKS: yes; GKE installs its own)."
  value       = true
}

output "cluster_autoscaler" {
  description = "Settings for an in-cluster cluster-autoscaler; enabled = false where the cloud autoscales node pools itself."
  value = {
    enabled                     = true
    cloud_provider              = "aws"
    cluster_name                = aws_eks_cluster.this.name
    region                      = var.region
    service_account_annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.cluster_autoscaler.arn }
  }
}

output "artifact_bucket_name" {
  description = "Name of the artifact bucket (MLflow artifacts, KFP pipeline root, model files)."
  value       = aws_s3_bucket.artifacts.bucket
}

output "artifact_bucket_uri" {
  description = "URI of the artifact bucket as MLflow, KFP and KServe storageUri expect it."
  value       = "s3://${aws_s3_bucket.artifacts.bucket}"
}

output "object_store_env" {
  description = "Environment variables pods need to reach the artifact bucket with their workload identity."
  value = {
    AWS_REGION         = var.region
    AWS_DEFAULT_REGION = var.region
  }
}

output "container_registry_url" {
  description = "Registry host and prefix images are pushed to: <registry>/<image>:<tag>."
  value       = "${local.account_id}.dkr.ecr.${var.region}.${local.dns_suffix}/${var.name}"
}

output "workload_identities" {
  description = "Per workload (pipelines, mlflow, serving): namespace, service account, and the annotations/pod labels that bind it to its cloud identity."
  value = {
    for k, v in var.workload_identities : k => {
      namespace       = v.namespace
      service_account = v.service_account
      annotations     = { "eks.amazonaws.com/role-arn" = aws_iam_role.workload[k].arn }
      pod_labels      = {}
    }
  }
}

output "mlflow_database" {
  description = "Connection of the MLflow backend store (enabled = false when no managed database was created)."
  value = {
    enabled  = var.create_database
    host     = var.create_database ? aws_db_instance.mlflow[0].address : ""
    port     = var.create_database ? aws_db_instance.mlflow[0].port : 5432
    database = var.create_database ? aws_db_instance.mlflow[0].db_name : ""
    username = var.create_database ? aws_db_instance.mlflow[0].username : ""
    sslmode  = "require"
  }
}

output "mlflow_database_password" {
  description = "Password of the MLflow database user (empty when no database)."
  value       = var.create_database ? jsondecode(data.aws_secretsmanager_secret_version.mlflow_db[0].secret_string)["password"] : ""
  sensitive   = true
}
