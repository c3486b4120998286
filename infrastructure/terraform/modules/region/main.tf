# Everything one region needs: VPC, DOKS cluster, managed PostgreSQL, load
# balancer with TLS. Environments instantiate it once (dev, staging) or per
# region (prod).
module "network" {
  source   = "../network"
  name     = "${var.name}-vpc"
  region   = var.region
  ip_range = var.vpc_ip_range
}

module "cluster" {
  source                    = "../doks"
  name                      = var.name
  region                    = var.region
  vpc_id                    = module.network.vpc_id
  vpc_ip_range              = module.network.ip_range
  kubernetes_version_prefix = var.kubernetes_version_prefix
  ha_control_plane          = var.ha_control_plane
  node_size                 = var.node_size
  min_nodes                 = var.min_nodes
  max_nodes                 = var.max_nodes
}

module "database" {
  source                = "../postgres"
  name                  = "${var.name}-pg"
  region                = var.region
  vpc_id                = module.network.vpc_id
  kubernetes_cluster_id = module.cluster.cluster_id
  size                  = var.db_size
  node_count            = var.db_node_count
}

module "edge" {
  source     = "../edge"
  name       = "${var.name}-lb"
  region     = var.region
  vpc_id     = module.network.vpc_id
  worker_tag = module.cluster.worker_tag
  domains    = [var.hostname]
}
