terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  # The providers this root configures. Their version bounds are declared once,
  # in the modules that use them (modules/aws-gpu-cluster, modules/ml-platform);
  # Terraform applies every module's bounds and .terraform.lock.hcl pins the result.
  required_providers {
    aws        = { source = "hashicorp/aws" }
    kubernetes = { source = "hashicorp/kubernetes" }
    helm       = { source = "hashicorp/helm" }
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
