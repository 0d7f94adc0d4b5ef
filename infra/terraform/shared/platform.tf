# Shared by every env root (envs/aws, envs/gcp, envs/azure link to this file):
# the kubernetes and helm providers, configured from the cluster module's common
# outputs (cluster_endpoint, cluster_ca_certificate, kubernetes_exec_auth), and the
# ML platform on top. Each env root defines module "cluster" and
# local.ingress_service_annotations; edit this file once for all three clouds.

provider "kubernetes" {
  host                   = module.cluster.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster.cluster_ca_certificate)
  exec {
    api_version = module.cluster.kubernetes_exec_auth.api_version
    command     = module.cluster.kubernetes_exec_auth.command
    args        = module.cluster.kubernetes_exec_auth.args
    env         = module.cluster.kubernetes_exec_auth.env
  }
}

provider "helm" {
  kubernetes {
    host                   = module.cluster.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster.cluster_ca_certificate)
    exec {
      api_version = module.cluster.kubernetes_exec_auth.api_version
      command     = module.cluster.kubernetes_exec_auth.command
      args        = module.cluster.kubernetes_exec_auth.args
      env         = module.cluster.kubernetes_exec_auth.env
    }
  }
}

module "platform" {
  source = "../../modules/ml-platform"

  cluster = module.cluster

  serving_domain             = var.serving_domain
  install_kubeflow_pipelines = var.install_kubeflow_pipelines
  # Cloud-specific: set in the env's main.tf (an NLB on AWS, none elsewhere).
  ingress_service_annotations = local.ingress_service_annotations
}
