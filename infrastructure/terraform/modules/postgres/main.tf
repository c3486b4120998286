# Managed PostgreSQL in the VPC. node_count 2+ is a primary with a hot standby
# in another host (automatic failover); the trusted-source firewall admits the
# cluster only. Backups: daily plus WAL, point-in-time restore for 7 days
# (docs/disaster-recovery.md).
resource "digitalocean_database_cluster" "this" {
  name                 = var.name
  engine               = "pg"
  version              = var.pg_version
  size                 = var.size
  region               = var.region
  node_count           = var.node_count
  private_network_uuid = var.vpc_id
  storage_size_mib     = var.storage_size_mib
  tags                 = [var.name]

  maintenance_window {
    day  = "sunday"
    hour = "03:00:00"
  }
}

resource "digitalocean_database_db" "todo" {
  cluster_id = digitalocean_database_cluster.this.id
  name       = var.database
}

resource "digitalocean_database_user" "app" {
  cluster_id = digitalocean_database_cluster.this.id
  name       = var.app_user
}

resource "digitalocean_database_firewall" "this" {
  cluster_id = digitalocean_database_cluster.this.id

  rule {
    type  = "k8s"
    value = var.kubernetes_cluster_id
  }
}
