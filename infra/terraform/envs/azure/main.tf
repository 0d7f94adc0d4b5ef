# hairseg on Azure: AKS with a GPU pool from modules/azure-gpu-cluster, and the
# ML platform from modules/ml-platform. Apply in two steps (see README.md).

provider "azurerm" {
  subscription_id = var.subscription_id
  # The storage account has shared keys disabled: use Entra ID for blob calls.
  storage_use_azuread = true
  features {}
}

module "cluster" {
  source = "../../modules/azure-gpu-cluster"

  name                            = var.name
  location                        = var.location
  api_server_authorized_ip_ranges = var.api_server_authorized_ip_ranges
  admin_group_object_ids          = var.admin_group_object_ids
  gpu_vm_size                     = var.gpu_vm_size
  gpu_max_nodes                   = var.gpu_max_nodes
  gpu_spot                        = var.gpu_spot
  create_database                 = var.create_database
  tags                            = { project = "hairseg" }
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
