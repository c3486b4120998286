# dev: one region.
module "region" {
  source           = "../../modules/region"
  name             = "todo-dev-${var.region}"
  region           = var.region
  vpc_ip_range     = "10.10.0.0/16" # = the vpc ipBlock of k8s/overlays/dev
  hostname         = var.hostname
  ha_control_plane = false
  node_size        = "s-2vcpu-4gb"
  min_nodes        = 1
  max_nodes        = 3
  db_size          = "db-s-1vcpu-2gb"
  db_node_count    = 1
}

module "registry" {
  source            = "../../modules/registry"
  name              = "todo-dev"
  region            = var.region
  subscription_tier = "starter"
}
