# Shared by every env root (each envs/<cloud>/outputs.tf links here).

output "kubeconfig_command" {
  description = "Run this to point kubectl at the cluster."
  value       = module.cluster.kubeconfig_command
}

output "kfp_ui" {
  description = "Kubeflow Pipelines UI: port-forward command and URLs."
  value       = module.platform.kfp_ui
}

output "mlflow" {
  description = "MLflow tracking URI (in cluster) and port-forward command."
  value       = module.platform.mlflow
}

output "kserve_ingress" {
  description = "KServe ingress load balancer and URL template."
  value       = module.platform.kserve_ingress
}

output "feast_online_store" {
  description = "Redis connection for feature_store.yaml on the cluster."
  value       = module.platform.feast_online_store
}

output "container_registry_url" {
  description = "Push images here: <url>/hairseg-predictor:<tag>."
  value       = module.cluster.container_registry_url
}

output "artifact_bucket_uri" {
  description = "Artifact bucket for models and pipeline outputs."
  value       = module.cluster.artifact_bucket_uri
}

output "gpu_scheduling" {
  description = "nodeSelector and tolerations for GPU pods (KFP GPU steps, KServe GPU predictors)."
  value       = module.platform.gpu_scheduling
}

output "workload_identities" {
  description = "Service accounts and their cloud-identity annotations."
  value       = module.cluster.workload_identities
}
