terraform {
  required_version = ">= 1.7.0, < 2.0.0"

  # The providers this root configures. Their version bounds are declared once,
  # in the modules that use them (modules/azure-gpu-cluster, modules/ml-platform);
  # Terraform applies every module's bounds and .terraform.lock.hcl pins the result.
  required_providers {
    azurerm    = { source = "hashicorp/azurerm" }
    kubernetes = { source = "hashicorp/kubernetes" }
    helm       = { source = "hashicorp/helm" }
  }

  # Remote state in a storage account container (Entra ID auth); uncomment,
  # then `terraform init -migrate-state`.
  # backend "azurerm" {
  #   resource_group_name  = "tfstate-rg"
  #   storage_account_name = "myorgtfstate"
  #   container_name       = "tfstate"
  #   key                  = "hairseg/azure.tfstate"
  #   use_azuread_auth     = true
  # }
}
