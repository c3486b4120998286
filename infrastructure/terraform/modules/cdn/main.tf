# Cloudflare in front of prod: proxied (CDN, WAF, DDoS) hostname with a load
# balancer over the regional origins, health-checked on /readyz, steering each
# visitor to the nearest healthy region (docs/multi-region.md).
resource "cloudflare_load_balancer_monitor" "readyz" {
  account_id     = var.account_id
  type           = "https"
  method         = "GET"
  path           = "/readyz"
  expected_codes = "200"
  interval       = 30
  timeout        = 5
  retries        = 2
  description    = "todo origins /readyz"
}

resource "cloudflare_load_balancer_pool" "region" {
  for_each   = var.origins
  account_id = var.account_id
  name       = "todo-${each.key}"
  monitor    = cloudflare_load_balancer_monitor.readyz.id

  origins {
    name    = each.key
    address = each.value
    enabled = true
  }
}

resource "cloudflare_load_balancer" "todo" {
  zone_id          = var.zone_id
  name             = var.hostname
  default_pool_ids = [for k in sort(keys(var.origins)) : cloudflare_load_balancer_pool.region[k].id]
  fallback_pool_id = cloudflare_load_balancer_pool.region[var.primary_origin].id
  proxied          = true
  steering_policy  = "geo"
  session_affinity = "none"
}
