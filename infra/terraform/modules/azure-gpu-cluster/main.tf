# Azure GPU cluster for hairseg: VNet, AKS with Entra ID + Azure RBAC, OIDC
# issuer and workload identity, a system pool and a GPU pool that scales from
# zero (spot optional), a storage account for artifacts, ACR, and an optional
# VNet-integrated PostgreSQL Flexible Server. Defaults follow Azure/terraform-azurerm-aks.

data "azurerm_client_config" "current" {}

locals {
  tags = merge(var.tags, { "hairseg-cluster" = var.name, "managed-by" = "terraform" })

  # gpu_node_labels, gpu_taint and system_node_labels: gpu_node_contract.tf, a link
  # to ../../shared/gpu_node_contract.tf (the same for every cloud).
  # AKS puts this taint on every Spot pool; declaring it avoids a perpetual diff.
  spot_taint = { key = "kubernetes.azure.com/scalesetpriority", value = "spot", effect = "NoSchedule" }

  gpu_taints = concat([local.gpu_taint], var.gpu_spot ? [local.spot_taint] : [])

  # Storage account names: 3-24 lower-case alphanumerics, globally unique.
  storage_account_name = substr("${replace(var.name, "-", "")}art${substr(md5(data.azurerm_client_config.current.subscription_id), 0, 6)}", 0, 24)
  acr_name             = substr("${replace(var.name, "-", "")}acr${substr(md5(data.azurerm_client_config.current.subscription_id), 0, 6)}", 0, 50)
}

resource "azurerm_resource_group" "this" {
  name     = "${var.name}-rg"
  location = var.location
  tags     = local.tags
}

# --- network -------------------------------------------------------------------

resource "azurerm_virtual_network" "this" {
  name                = var.name
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = [var.vnet_cidr]
  tags                = local.tags
}

resource "azurerm_subnet" "nodes" {
  name                 = "nodes"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [var.nodes_subnet_cidr]
  service_endpoints    = ["Microsoft.Storage"]
}

# --- cluster -------------------------------------------------------------------

resource "azurerm_kubernetes_cluster" "this" {
  name                      = var.name
  location                  = azurerm_resource_group.this.location
  resource_group_name       = azurerm_resource_group.this.name
  dns_prefix                = var.name
  kubernetes_version        = var.kubernetes_version
  sku_tier                  = var.sku_tier
  automatic_upgrade_channel = "patch"
  node_os_upgrade_channel   = "NodeImage"

  # Entra ID sign-in only (kubelogin), authorised by Azure RBAC.
  local_account_disabled = true
  azure_active_directory_role_based_access_control {
    tenant_id              = data.azurerm_client_config.current.tenant_id
    azure_rbac_enabled     = true
    admin_group_object_ids = var.admin_group_object_ids
  }

  oidc_issuer_enabled       = true
  workload_identity_enabled = true
  azure_policy_enabled      = true

  api_server_access_profile {
    authorized_ip_ranges = var.api_server_authorized_ip_ranges
  }

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    vnet_subnet_id               = azurerm_subnet.nodes.id
    auto_scaling_enabled         = true
    min_count                    = var.system_node_count.min
    max_count                    = var.system_node_count.max
    os_disk_size_gb              = var.node_disk_size_gb
    os_disk_type                 = "Managed"
    max_pods                     = 110
    only_critical_addons_enabled = false
    host_encryption_enabled      = true
    temporary_name_for_rotation  = "systemtmp"
    node_labels                  = local.system_node_labels
    tags                         = local.tags

    upgrade_settings {
      max_surge = "10%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_policy      = "azure"
    load_balancer_sku   = "standard"
    outbound_type       = "loadBalancer"
  }

  tags = local.tags

  lifecycle {
    ignore_changes = [default_node_pool[0].node_count]
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "gpu" {
  name                  = "gpu"
  kubernetes_cluster_id = azurerm_kubernetes_cluster.this.id
  vm_size               = var.gpu_vm_size
  vnet_subnet_id        = azurerm_subnet.nodes.id
  zones                 = length(var.gpu_zones) > 0 ? var.gpu_zones : null
  mode                  = "User"
  max_pods              = 110

  # Scale from zero.
  auto_scaling_enabled = true
  min_count            = 0
  max_count            = var.gpu_max_nodes
  node_count           = 0

  priority        = var.gpu_spot ? "Spot" : "Regular"
  eviction_policy = var.gpu_spot ? "Delete" : null
  spot_max_price  = var.gpu_spot ? -1 : null # -1 = pay up to the on-demand price

  node_taints = [for t in local.gpu_taints : "${t.key}=${t.value}:${t.effect}"]
  node_labels = merge(
    local.gpu_node_labels,
    { "hairseg.io/pool" = "gpu" },
    var.gpu_spot ? { "kubernetes.azure.com/scalesetpriority" = "spot" } : {},
  )

  os_disk_size_gb         = var.node_disk_size_gb
  host_encryption_enabled = true
  tags                    = local.tags

  lifecycle {
    ignore_changes = [node_count]
  }
}

# --- registry ------------------------------------------------------------------

resource "azurerm_container_registry" "this" {
  name                          = local.acr_name
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  sku                           = var.acr_sku
  admin_enabled                 = false
  public_network_access_enabled = true
  tags                          = local.tags
}

resource "azurerm_role_assignment" "kubelet_acr_pull" {
  scope                            = azurerm_container_registry.this.id
  role_definition_name             = "AcrPull"
  principal_id                     = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
  skip_service_principal_aad_check = true
}
