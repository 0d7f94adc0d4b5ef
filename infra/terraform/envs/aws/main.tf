# hairseg on AWS: EKS with a GPU node group from modules/aws-gpu-cluster, and
# the ML platform from modules/ml-platform. Apply in two steps (see README.md):
# the kubernetes/helm providers need the cluster to exist.

provider "aws" {
  region = var.region
  default_tags {
    tags = var.tags
  }
}

module "cluster" {
  source = "../../modules/aws-gpu-cluster"

  name                         = var.name
  region                       = var.region
  endpoint_public_access_cidrs = var.endpoint_public_access_cidrs
  admin_principal_arns         = var.admin_principal_arns
  gpu_instance_types           = var.gpu_instance_types
  gpu_max_nodes                = var.gpu_max_nodes
  gpu_spot                     = var.gpu_spot
  create_database              = var.create_database
  database_deletion_protection = var.deletion_protection
  tags                         = var.tags
}

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
  # A Network Load Balancer in front of Kourier.
  ingress_service_annotations = {
    "service.beta.kubernetes.io/aws-load-balancer-type" = "nlb"
  }
}
