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

# The kubernetes and helm providers and module "platform" are in platform.tf,
# a link to ../../shared/platform.tf (the same for every cloud).
locals {
  # A Network Load Balancer in front of Kourier.
  ingress_service_annotations = {
    "service.beta.kubernetes.io/aws-load-balancer-type" = "nlb"
  }
}
