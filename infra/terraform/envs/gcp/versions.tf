terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.31, < 3.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.13, < 3.0"
    }
  }

  # Remote state in a versioned GCS bucket; uncomment, then
  # `terraform init -migrate-state`.
  # backend "gcs" {
  #   bucket = "my-org-terraform-state"
  #   prefix = "hairseg/gcp"
  # }
}
