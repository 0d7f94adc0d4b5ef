terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  # No cloud provider: everything cloud-specific arrives as inputs from a
  # *-gpu-cluster module's outputs. The kubectl step for Kubeflow Pipelines
  # uses terraform_data (built in), not the null provider.
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 3.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.13, < 3.0"
    }
  }
}
