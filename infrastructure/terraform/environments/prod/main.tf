# prod: the same region module in two regions, Cloudflare in front.
# nyc3 is the write primary (Kafka and PostgreSQL primaries); ams3 serves
# reads from its own read model fed by MirrorMaker 2 and takes over on
# failover (docs/multi-region.md). The VPC CIDRs lie inside 10.30.0.0/15,
# the `vpc` ipBlock of k8s/overlays/prod.
module "region_primary" {
  source        = "../../modules/region"
  name          = "todo-prod-${var.primary_region}"
  region        = var.primary_region
  vpc_ip_range  = "10.30.0.0/16"
  hostname      = "${var.primary_region}.origin.${var.hostname}"
  node_size     = var.node_size
  min_nodes     = 3
  max_nodes     = 10
  db_size       = "db-s-4vcpu-8gb"
  db_node_count = 3
}

module "region_secondary" {
  source        = "../../modules/region"
  name          = "todo-prod-${var.secondary_region}"
  region        = var.secondary_region
  vpc_ip_range  = "10.31.0.0/16"
  hostname      = "${var.secondary_region}.origin.${var.hostname}"
  node_size     = var.node_size
  min_nodes     = 3
  max_nodes     = 10
  db_size       = "db-s-4vcpu-8gb"
  db_node_count = 2
}

module "registry" {
  source            = "../../modules/registry"
  name              = "todo-prod"
  region            = var.primary_region
  subscription_tier = "professional"
}

module "cdn" {
  source     = "../../modules/cdn"
  account_id = var.cloudflare_account_id
  zone_id    = var.cloudflare_zone_id
  hostname   = var.hostname
  origins = {
    (var.primary_region)   = "${var.primary_region}.origin.${var.hostname}"
    (var.secondary_region) = "${var.secondary_region}.origin.${var.hostname}"
  }
  primary_origin = var.primary_region
}
