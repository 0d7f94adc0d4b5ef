terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  # The providers this root configures. Their version bounds are declared once,
  # in the modules that use them (modules/gcp-gpu-cluster, modules/ml-platform);
  # Terraform applies every module's bounds and .terraform.lock.hcl pins the result.
  required_providers {
    google     = { source = "hashicorp/google" }
    kubernetes = { source = "hashicorp/kubernetes" }
    helm       = { source = "hashicorp/helm" }
  }

  # Remote state in a versioned GCS bucket; uncomment, then
  # `terraform init -migrate-state`.
  # backend "gcs" {
  #   bucket = "my-org-terraform-state"
  #   prefix = "hairseg/gcp"
  # }
}
