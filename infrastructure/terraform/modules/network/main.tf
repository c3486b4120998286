# One VPC per region: the cluster, its load balancer and the database share it.
resource "digitalocean_vpc" "this" {
  name        = var.name
  region      = var.region
  ip_range    = var.ip_range
  description = "todo platform ${var.name}"
}
