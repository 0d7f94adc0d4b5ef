output "kfp_ui" {
  description = "How to open the Kubeflow Pipelines UI (in-cluster service; reach it with the port-forward command)."
  # The addresses are empty strings when KFP is not installed; the pipeline root and
  # runner identity hold either way (for a KFP installed by other means).
  value = merge(
    {
      for k, v in {
        in_cluster_url = "http://ml-pipeline-ui.kubeflow.svc.cluster.local"
        port_forward   = "kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80"
        local_url      = "http://localhost:8080"
        api_in_cluster = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
      } : k => var.install_kubeflow_pipelines ? v : ""
    },
    {
      pipeline_root   = "${var.cluster.artifact_bucket_uri}/pipelines"
      service_account = local.pipeline_identity.service_account
      namespace       = local.pipeline_identity.namespace
    },
  )
}

output "mlflow" {
  description = "MLflow tracking server: in-cluster tracking URI (MLFLOW_TRACKING_URI for KFP steps) and the port-forward for a laptop."
  value = {
    tracking_uri  = "http://mlflow.${kubernetes_namespace_v1.mlflow.metadata[0].name}.svc.cluster.local:5000"
    port_forward  = "kubectl -n ${kubernetes_namespace_v1.mlflow.metadata[0].name} port-forward svc/mlflow 5000:5000"
    local_url     = "http://localhost:5000"
    artifact_root = "${var.cluster.artifact_bucket_uri}/mlflow"
  }
}

output "kserve_ingress" {
  description = "KServe/Knative ingress: the Kourier load balancer address, the route domain, and how an InferenceService URL is formed."
  value = {
    load_balancer = try(
      coalesce(
        data.kubernetes_service_v1.kourier.status[0].load_balancer[0].ingress[0].hostname,
        data.kubernetes_service_v1.kourier.status[0].load_balancer[0].ingress[0].ip,
      ),
      "",
    )
    domain           = var.serving_domain
    url_template     = "http://<inferenceservice>.${kubernetes_namespace_v1.serving.metadata[0].name}.${var.serving_domain}"
    curl_host_header = "curl -H 'Host: <inferenceservice>.${kubernetes_namespace_v1.serving.metadata[0].name}.${var.serving_domain}' http://<load_balancer>/v1/models/<inferenceservice>:predict"
    namespace        = kubernetes_namespace_v1.serving.metadata[0].name
    service_account  = kubernetes_service_account_v1.serving.metadata[0].name
  }
}

output "feast_online_store" {
  description = "Redis for the Feast online store: connection string without password, and where the password is."
  value = {
    connection_string   = "redis-master.${kubernetes_namespace_v1.feast.metadata[0].name}.svc.cluster.local:6379"
    password_secret     = "redis"
    password_secret_key = "redis-password"
    namespace           = kubernetes_namespace_v1.feast.metadata[0].name
  }
}

output "installed_versions" {
  description = "Pinned versions of everything this module installed."
  value = merge(var.versions, {
    kubeflow_pipelines   = var.install_kubeflow_pipelines ? var.versions.kubeflow_pipelines : "not installed"
    nvidia_device_plugin = var.cluster.gpu_device_plugin_required ? var.versions.nvidia_device_plugin : "managed by the cloud"
    cluster_autoscaler   = var.cluster.cluster_autoscaler.enabled ? var.versions.cluster_autoscaler : "managed by the cloud"
  })
}

output "gpu_scheduling" {
  description = "nodeSelector and tolerations a GPU pod needs (KFP GPU steps, KServe GPU predictors); the device plugin runs with them."
  value = {
    node_selector = var.cluster.gpu_node_selector
    tolerations   = var.cluster.gpu_tolerations
  }
}
