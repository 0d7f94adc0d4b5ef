# Optional private Cloud SQL for MLflow, reachable from the VPC only
# (private services access), TLS required.

resource "google_compute_global_address" "private_services" {
  count         = var.create_database ? 1 : 0
  project       = var.project_id
  name          = "${var.name}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.this.id
}

resource "google_service_networking_connection" "private_services" {
  count                   = var.create_database ? 1 : 0
  network                 = google_compute_network.this.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services[0].name]
}

resource "google_sql_database_instance" "mlflow" {
  count               = var.create_database ? 1 : 0
  project             = var.project_id
  name                = "${var.name}-mlflow"
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.database_tier
    availability_type = "ZONAL"
    disk_type         = "PD_SSD"
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.this.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "mlflow" {
  count    = var.create_database ? 1 : 0
  project  = var.project_id
  name     = "mlflow"
  instance = google_sql_database_instance.mlflow[0].name
}

resource "random_password" "mlflow_db" {
  count   = var.create_database ? 1 : 0
  length  = 32
  special = false
}

resource "google_sql_user" "mlflow" {
  count    = var.create_database ? 1 : 0
  project  = var.project_id
  name     = "mlflow"
  instance = google_sql_database_instance.mlflow[0].name
  password = random_password.mlflow_db[0].result
}
