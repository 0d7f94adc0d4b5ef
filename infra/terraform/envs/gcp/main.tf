# hairseg on GCP: private GKE with a GPU pool from modules/gcp-gpu-cluster, and
# the ML platform from modules/ml-platform. Apply in two steps (see README.md).

provider "google" {
  project = var.project_id
  region  = var.region
}

module "cluster" {
  source = "../../modules/gcp-gpu-cluster"

  name                    = var.name
  project_id              = var.project_id
  region                  = var.region
  master_authorized_cidrs = var.master_authorized_cidrs
  gpu_machine_type        = var.gpu_machine_type
  gpu_accelerator_type    = var.gpu_accelerator_type
  gpu_zones               = var.gpu_zones
  gpu_max_nodes           = var.gpu_max_nodes
  gpu_spot                = var.gpu_spot
  create_database         = var.create_database
  deletion_protection     = var.deletion_protection
  labels                  = { project = "hairseg" }
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
}
