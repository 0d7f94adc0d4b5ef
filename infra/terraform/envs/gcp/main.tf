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

# The kubernetes and helm providers and module "platform" are in platform.tf,
# a link to ../../shared/platform.tf (the same for every cloud).
locals {
  # The cloud's default load balancer in front of Kourier.
  ingress_service_annotations = {}
}
