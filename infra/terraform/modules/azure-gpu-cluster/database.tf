# Optional PostgreSQL Flexible Server for MLflow, injected into a delegated
# subnet with a private DNS zone: no public endpoint, TLS enforced by default.

resource "azurerm_subnet" "database" {
  count                = var.create_database ? 1 : 0
  name                 = "postgres"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [var.database_subnet_cidr]

  delegation {
    name = "postgres-flexible"
    service_delegation {
      name    = "Microsoft.DBforPostgreSQL/flexibleServers"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_private_dns_zone" "database" {
  count               = var.create_database ? 1 : 0
  name                = "${var.name}.private.postgres.database.azure.com"
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "database" {
  count                 = var.create_database ? 1 : 0
  name                  = "${var.name}-postgres"
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = azurerm_private_dns_zone.database[0].name
  virtual_network_id    = azurerm_virtual_network.this.id
  tags                  = local.tags
}

resource "random_password" "mlflow_db" {
  count   = var.create_database ? 1 : 0
  length  = 32
  special = false
}

resource "azurerm_postgresql_flexible_server" "mlflow" {
  count                         = var.create_database ? 1 : 0
  name                          = "${var.name}-mlflow"
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  version                       = var.database_version
  sku_name                      = var.database_sku
  storage_mb                    = 32768
  backup_retention_days         = 7
  delegated_subnet_id           = azurerm_subnet.database[0].id
  private_dns_zone_id           = azurerm_private_dns_zone.database[0].id
  public_network_access_enabled = false
  administrator_login           = "mlflow"
  administrator_password        = random_password.mlflow_db[0].result
  tags                          = local.tags

  lifecycle {
    # Azure picks a zone when none is given.
    ignore_changes = [zone]
  }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.database]
}

resource "azurerm_postgresql_flexible_server_configuration" "log_checkpoints" {
  count     = var.create_database ? 1 : 0
  name      = "log_checkpoints"
  server_id = azurerm_postgresql_flexible_server.mlflow[0].id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_database" "mlflow" {
  count     = var.create_database ? 1 : 0
  name      = "mlflow"
  server_id = azurerm_postgresql_flexible_server.mlflow[0].id
  charset   = "UTF8"
  collation = "en_US.utf8"
}
