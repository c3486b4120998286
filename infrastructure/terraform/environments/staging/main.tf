# staging: one region.
module "region" {
  source           = "../../modules/region"
  name             = "todo-staging-${var.region}"
  region           = var.region
  vpc_ip_range     = "10.20.0.0/16" # = the vpc ipBlock of k8s/overlays/staging
  hostname         = var.hostname
  ha_control_plane = true
  node_size        = "s-4vcpu-8gb"
  min_nodes        = 2
  max_nodes        = 4
  db_size          = "db-s-1vcpu-2gb"
  db_node_count    = 2
}

module "registry" {
  source            = "../../modules/registry"
  name              = "todo-staging"
  region            = var.region
  subscription_tier = "basic"
}
