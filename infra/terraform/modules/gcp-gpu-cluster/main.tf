# GCP GPU cluster for hairseg: VPC with Cloud NAT, private regional GKE with
# Workload Identity, a system pool and a GPU pool that scales from zero (spot
# optional), a GCS artifact bucket, Artifact Registry, and an optional private
# Cloud SQL PostgreSQL for MLflow. Defaults follow
# terraform-google-modules/kubernetes-engine's private-cluster submodule.

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "this" {
  project = var.project_id
}

locals {
  labels = merge(var.labels, { "hairseg-cluster" = var.name, "managed-by" = "terraform" })

  # gpu_node_labels, gpu_taint and system_node_labels: gpu_node_contract.tf, a link
  # to ../../shared/gpu_node_contract.tf (the same for every cloud). GKE adds the
  # GPU taint to GPU pools itself; declaring it keeps the contract explicit.
  gpu_taints = [local.gpu_taint]

  workload_pool = "${var.project_id}.svc.id.goog"
}

# --- network -------------------------------------------------------------------

resource "google_compute_network" "this" {
  project                 = var.project_id
  name                    = var.name
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "nodes" {
  project                  = var.project_id
  name                     = "${var.name}-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "this" {
  project = var.project_id
  name    = var.name
  region  = var.region
  network = google_compute_network.this.id
}

# Private nodes pull images and reach APIs through Cloud NAT.
resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  name                               = var.name
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# --- encryption key: GKE secrets, bucket, registry ----------------------------

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = var.name
  location = var.region
}

resource "google_kms_crypto_key" "this" {
  name            = "${var.name}-data"
  key_ring        = google_kms_key_ring.this.id
  rotation_period = "7776000s" # 90 days
  labels          = local.labels
}

resource "google_kms_crypto_key_iam_member" "service_agents" {
  for_each = {
    gke = "serviceAccount:service-${data.google_project.this.number}@container-engine-robot.iam.gserviceaccount.com"
    gcs = "serviceAccount:${data.google_storage_project_service_account.this.email_address}"
    gar = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
  }
  crypto_key_id = google_kms_crypto_key.this.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}

# --- cluster -------------------------------------------------------------------

# Nodes run as a minimal service account, not the Compute Engine default one.
resource "google_service_account" "nodes" {
  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "${var.name} GKE nodes"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/autoscaling.metricsWriter",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  network             = google_compute_network.this.id
  subnetwork          = google_compute_subnetwork.nodes.id
  networking_mode     = "VPC_NATIVE"
  datapath_provider   = "ADVANCED_DATAPATH"
  deletion_protection = var.deletion_protection
  resource_labels     = local.labels

  # Node pools are managed below; GKE needs a default pool at creation.
  remove_default_node_pool = true
  initial_node_count       = 1

  release_channel {
    channel = var.kubernetes_release_channel
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.enable_private_endpoint
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
    master_global_access_config {
      enabled = false
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "allowed-${cidr_blocks.key}"
      }
    }
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  database_encryption {
    state    = "ENCRYPTED"
    key_name = google_kms_crypto_key.this.id
  }

  addons_config {
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
    http_load_balancing {
      disabled = false
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    # The throw-away default pool's node_config is irrelevant after creation.
    ignore_changes = [node_config]
  }

  depends_on = [google_kms_crypto_key_iam_member.service_agents]
}

resource "google_container_node_pool" "system" {
  project  = var.project_id
  name     = "system"
  cluster  = google_container_cluster.this.id
  location = var.region

  autoscaling {
    min_node_count = var.system_nodes_per_zone.min
    max_node_count = var.system_nodes_per_zone.max
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.system_machine_type
    disk_type       = "pd-balanced"
    disk_size_gb    = var.node_disk_size_gb
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = local.system_node_labels
    resource_labels = local.labels
    metadata        = { "disable-legacy-endpoints" = "true" }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}

resource "google_container_node_pool" "gpu" {
  project        = var.project_id
  name           = "gpu"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = length(var.gpu_zones) > 0 ? var.gpu_zones : null

  # Scale from zero: total bounds across the pool's zones.
  autoscaling {
    total_min_node_count = 0
    total_max_node_count = var.gpu_max_nodes
    location_policy      = "ANY"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.gpu_machine_type
    spot            = var.gpu_spot
    disk_type       = "pd-balanced"
    disk_size_gb    = var.node_disk_size_gb
    image_type      = "COS_CONTAINERD"
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = merge(local.gpu_node_labels, { "hairseg.io/pool" = "gpu" })
    resource_labels = local.labels
    metadata        = { "disable-legacy-endpoints" = "true" }

    guest_accelerator {
      type  = var.gpu_accelerator_type
      count = 1
      # GKE installs the driver and its own device plugin on these nodes.
      gpu_driver_installation_config {
        gpu_driver_version = "LATEST"
      }
    }

    taint {
      key    = local.gpu_taint.key
      value  = local.gpu_taint.value
      effect = "NO_SCHEDULE"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
