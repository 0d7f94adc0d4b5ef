# The ML platform on any of the three clusters: cert-manager, Knative Serving
# (Kourier) + KServe in Serverless mode, Kubeflow Pipelines standalone, MLflow,
# Redis for the Feast online store, the NVIDIA device plugin and (EKS only)
# the cluster autoscaler. Only the kubernetes and helm providers are used; the
# caller configures them from the cluster module's outputs.

locals {
  # MLflow's artifact store, by cloud. Clients reach artifacts through the
  # server (--serve-artifacts), so only the MLflow pod needs bucket access.
  mlflow_artifact_root = {
    aws = { s3 = { enabled = true, bucket = var.cluster.artifact_bucket_name, path = "mlflow" } }
    gcp = { gcs = { enabled = true, bucket = var.cluster.artifact_bucket_name, path = "mlflow" } }
    azure = { azureBlob = {
      enabled        = true
      container      = var.cluster.artifact_bucket_name
      storageAccount = lookup(var.cluster.object_store_env, "AZURE_STORAGE_ACCOUNT_NAME", "")
      path           = "mlflow"
    } }
  }[var.cluster.cloud]

  mlflow_identity   = var.cluster.workload_identities["mlflow"]
  serving_identity  = var.cluster.workload_identities["serving"]
  pipeline_identity = var.cluster.workload_identities["pipelines"]

  kubeconfig = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = "hairseg"
    clusters = [{ name = "hairseg", cluster = {
      server                     = var.cluster.cluster_endpoint
      certificate-authority-data = var.cluster.cluster_ca_certificate
    } }]
    users = [{ name = "hairseg", user = { exec = {
      apiVersion         = var.cluster.kubernetes_exec_auth.api_version
      command            = var.cluster.kubernetes_exec_auth.command
      args               = var.cluster.kubernetes_exec_auth.args
      env                = [for k, v in var.cluster.kubernetes_exec_auth.env : { name = k, value = v }]
      interactiveMode    = "Never"
      provideClusterInfo = false
    } } }]
    contexts = [{ name = "hairseg", context = { cluster = "hairseg", user = "hairseg" } }]
  })
}

# --- GPU nodes and autoscaling ---------------------------------------------------

resource "helm_release" "nvidia_device_plugin" {
  count            = var.cluster.gpu_device_plugin_required ? 1 : 0
  name             = "nvidia-device-plugin"
  repository       = "https://nvidia.github.io/k8s-device-plugin"
  chart            = "nvidia-device-plugin"
  version          = var.versions.nvidia_device_plugin
  namespace        = "nvidia-device-plugin"
  create_namespace = true
  values = [yamlencode({
    nodeSelector = var.cluster.gpu_node_selector
    tolerations  = var.cluster.gpu_tolerations
  })]
}

resource "helm_release" "cluster_autoscaler" {
  count      = var.cluster.cluster_autoscaler.enabled ? 1 : 0
  name       = "cluster-autoscaler"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.versions.cluster_autoscaler
  namespace  = "kube-system"
  values = [yamlencode({
    cloudProvider = var.cluster.cluster_autoscaler.cloud_provider
    awsRegion     = var.cluster.cluster_autoscaler.region
    autoDiscovery = { clusterName = var.cluster.cluster_autoscaler.cluster_name }
    rbac = { serviceAccount = {
      create      = true
      name        = "cluster-autoscaler"
      annotations = var.cluster.cluster_autoscaler.service_account_annotations
    } }
    nodeSelector = var.cluster.system_node_selector
    extraArgs = {
      "balance-similar-node-groups"   = true
      "skip-nodes-with-system-pods"   = false
      "scale-down-unneeded-time"      = "5m"
      "scale-down-delay-after-add"    = "5m"
      "expander"                      = "least-waste"
      "skip-nodes-with-local-storage" = false
    }
  })]
}

# --- cert-manager (KServe webhooks) ---------------------------------------------

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  wait             = true
  values = [yamlencode({
    crds         = { enabled = true }
    nodeSelector = var.cluster.system_node_selector
    webhook      = { nodeSelector = var.cluster.system_node_selector }
    cainjector   = { nodeSelector = var.cluster.system_node_selector }
  })]
}

# --- Knative Serving with Kourier -----------------------------------------------

resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  repository       = "https://knative.github.io/operator"
  chart            = "knative-operator"
  version          = var.versions.knative_operator
  namespace        = "knative-operator"
  create_namespace = true
  wait             = true
}

resource "helm_release" "knative_serving" {
  name             = "knative-serving"
  chart            = "${path.module}/charts/knative-serving"
  namespace        = "knative-serving"
  create_namespace = true
  values = [yamlencode({
    version                   = var.versions.knative_serving
    domain                    = var.serving_domain
    ingressServiceAnnotations = var.ingress_service_annotations
    systemNodeSelector        = var.cluster.system_node_selector
  })]
  depends_on = [helm_release.knative_operator]
}

# --- KServe (Serverless mode: Knative revisions give canary traffic splits) -----

resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.versions.kserve
  namespace        = "kserve"
  create_namespace = true
}

resource "helm_release" "kserve" {
  name       = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve"
  version    = var.versions.kserve
  namespace  = "kserve"
  wait       = true
  values = [yamlencode({
    kserve = {
      controller = {
        deploymentMode = "Serverless"
        nodeSelector   = var.cluster.system_node_selector
        gateway = {
          domain = var.serving_domain
          # Kourier, not Istio: KServe must not create Istio VirtualServices.
          disableIstioVirtualHost = true
          ingressGateway = {
            gateway        = "knative-serving/knative-ingress-gateway"
            gatewayService = "kourier.knative-serving.svc.cluster.local"
          }
          localGateway = {
            gateway        = "knative-serving/knative-local-gateway"
            gatewayService = "kourier-internal.knative-serving.svc.cluster.local"
          }
        }
      }
    }
  })]
  depends_on = [helm_release.kserve_crd, helm_release.cert_manager, helm_release.knative_serving]
}

resource "kubernetes_namespace_v1" "serving" {
  metadata {
    name   = local.serving_identity.namespace
    labels = { "app.kubernetes.io/part-of" = "hairseg" }
  }
}

# The predictor's service account: its cloud identity reads models from the
# artifact bucket (KServe's storage initializer runs under it).
resource "kubernetes_service_account_v1" "serving" {
  metadata {
    name        = local.serving_identity.service_account
    namespace   = kubernetes_namespace_v1.serving.metadata[0].name
    annotations = local.serving_identity.annotations
    labels      = local.serving_identity.pod_labels
  }
  automount_service_account_token = false
}

# --- MLflow tracking server ----------------------------------------------------

resource "kubernetes_namespace_v1" "mlflow" {
  metadata {
    name   = local.mlflow_identity.namespace
    labels = { "app.kubernetes.io/part-of" = "hairseg" }
  }
}

resource "helm_release" "mlflow" {
  name       = "mlflow"
  repository = "https://community-charts.github.io/helm-charts"
  chart      = "mlflow"
  version    = var.versions.mlflow_chart
  namespace  = kubernetes_namespace_v1.mlflow.metadata[0].name
  values = [yamlencode({
    serviceAccount = {
      create      = true
      name        = local.mlflow_identity.service_account
      annotations = local.mlflow_identity.annotations
    }
    podLabels    = local.mlflow_identity.pod_labels
    nodeSelector = var.cluster.system_node_selector
    backendStore = {
      databaseMigration = true
      postgres = {
        enabled  = var.cluster.mlflow_database.enabled
        host     = var.cluster.mlflow_database.host
        port     = var.cluster.mlflow_database.port
        database = var.cluster.mlflow_database.database
        user     = var.cluster.mlflow_database.username
      }
    }
    artifactRoot = local.mlflow_artifact_root
    extraFlags   = ["serveArtifacts"]
    extraEnvVars = merge(var.cluster.object_store_env, { PGSSLMODE = var.cluster.mlflow_database.sslmode })
  })]
  # Kept out of the values list above so it is never shown in a plan.
  set_sensitive {
    name  = "backendStore.postgres.password"
    value = var.cluster.mlflow_database_password
  }
}

# --- Redis: Feast online store ---------------------------------------------------

resource "kubernetes_namespace_v1" "feast" {
  metadata {
    name   = "feast"
    labels = { "app.kubernetes.io/part-of" = "hairseg" }
  }
}

resource "helm_release" "redis" {
  name       = "redis"
  repository = "oci://registry-1.docker.io/bitnamicharts"
  chart      = "redis"
  version    = var.versions.redis_chart
  namespace  = kubernetes_namespace_v1.feast.metadata[0].name
  values = [yamlencode({
    architecture = "standalone"
    # Bitnami moved its versioned images from docker.io/bitnami to
    # docker.io/bitnamilegacy in 2025; the chart must be told the override is intended.
    image  = { repository = var.redis_image_repository }
    global = { security = { allowInsecureImages = true } }
    # The chart generates the password into Secret "redis" (key redis-password).
    auth = { enabled = true }
    master = {
      nodeSelector = var.cluster.system_node_selector
      persistence  = { enabled = true, size = var.redis_persistence_size }
    }
  })]
}

# --- Kubeflow Pipelines (standalone) -------------------------------------------
#
# KFP ships kustomize manifests, not a Helm chart. Vendoring the rendered YAML
# into kubernetes_manifest resources would need its CRDs at plan time and
# thousands of lines to keep in step, so we run the documented upstream
# install (`kubectl apply -k` of the pinned tag) from terraform_data, with a
# kubeconfig built from the cluster outputs. Needs kubectl (>= 1.27) and git on
# the machine that runs terraform.

resource "terraform_data" "kubeflow_pipelines" {
  count = var.install_kubeflow_pipelines ? 1 : 0

  triggers_replace = [var.versions.kubeflow_pipelines, var.cluster.cluster_endpoint]
  input = {
    kubeconfig = local.kubeconfig
    version    = var.versions.kubeflow_pipelines
  }

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      set -euo pipefail
      export KUBECONFIG="$(mktemp)"; trap 'rm -f "$KUBECONFIG"' EXIT
      printf '%s' "$KFP_KUBECONFIG" > "$KUBECONFIG"
      base="github.com/kubeflow/pipelines/manifests/kustomize"
      kubectl apply -k "$base/cluster-scoped-resources?ref=$KFP_VERSION"
      kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
      kubectl apply -k "$base/env/platform-agnostic?ref=$KFP_VERSION"
      kubectl -n kubeflow rollout status deploy/ml-pipeline --timeout=600s
    EOT
    environment = {
      KFP_KUBECONFIG = self.input.kubeconfig
      KFP_VERSION    = self.input.version
    }
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      set -euo pipefail
      export KUBECONFIG="$(mktemp)"; trap 'rm -f "$KUBECONFIG"' EXIT
      printf '%s' "$KFP_KUBECONFIG" > "$KUBECONFIG"
      base="github.com/kubeflow/pipelines/manifests/kustomize"
      kubectl delete --ignore-not-found -k "$base/env/platform-agnostic?ref=$KFP_VERSION"
      kubectl delete --ignore-not-found -k "$base/cluster-scoped-resources?ref=$KFP_VERSION"
    EOT
    environment = {
      KFP_KUBECONFIG = self.input.kubeconfig
      KFP_VERSION    = self.input.version
    }
  }

  depends_on = [helm_release.cert_manager]
}

# KFP's pipeline-runner service account gets the pipelines cloud identity.
resource "kubernetes_annotations" "pipeline_runner" {
  count       = var.install_kubeflow_pipelines ? 1 : 0
  api_version = "v1"
  kind        = "ServiceAccount"
  metadata {
    name      = local.pipeline_identity.service_account
    namespace = local.pipeline_identity.namespace
  }
  annotations = local.pipeline_identity.annotations
  force       = true
  depends_on  = [terraform_data.kubeflow_pipelines]
}

# KFP v2 launcher reads its default pipeline root from this ConfigMap, so runs
# write their artifacts to the cloud bucket rather than the in-cluster store.
resource "kubernetes_config_map_v1" "kfp_launcher" {
  count = var.install_kubeflow_pipelines ? 1 : 0
  metadata {
    name      = "kfp-launcher"
    namespace = local.pipeline_identity.namespace
  }
  data = {
    defaultPipelineRoot = "${var.cluster.artifact_bucket_uri}/pipelines"
  }
  depends_on = [terraform_data.kubeflow_pipelines]
}

# The Kourier LoadBalancer, read after Knative is up, for the ingress output.
data "kubernetes_service_v1" "kourier" {
  metadata {
    name      = "kourier"
    namespace = "knative-serving"
  }
  depends_on = [helm_release.knative_serving, helm_release.kserve]
}
