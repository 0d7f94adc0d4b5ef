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

# The kubernetes and helm providers and module "platform" are in platform.tf,
# a link to ../../shared/platform.tf (the same for every cloud).
locals {
  # The cloud's default load balancer in front of Kourier.
  ingress_service_annotations = {}
}
