# The account's container registry (DigitalOcean allows one per account, so
# each environment lives in its own team/account) and the pull secret the
# cluster uses.
resource "digitalocean_container_registry" "this" {
  name                   = var.name
  subscription_tier_slug = var.subscription_tier
  region                 = var.region
}

resource "digitalocean_container_registry_docker_credentials" "pull" {
  registry_name = digitalocean_container_registry.this.name
  write         = false
}
