terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
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

  # Remote state: create the bucket once (versioned, encrypted), then uncomment
  # and run `terraform init -migrate-state`. use_lockfile needs Terraform >= 1.10.
  # backend "s3" {
  #   bucket       = "my-org-terraform-state"
  #   key          = "hairseg/aws/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
