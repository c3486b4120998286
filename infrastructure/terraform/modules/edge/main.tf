# Regional load balancer with TLS: DigitalOcean terminates HTTPS with a
# Let's Encrypt certificate for the regional hostname and re-encrypts to the
# Gateway's HTTPS NodePort on the workers; HTTP is redirected to HTTPS.
resource "digitalocean_certificate" "this" {
  name    = "${var.name}-tls"
  type    = "lets_encrypt"
  domains = var.domains

  lifecycle {
    create_before_destroy = true
  }
}

resource "digitalocean_loadbalancer" "this" {
  name                      = var.name
  region                    = var.region
  vpc_uuid                  = var.vpc_id
  size_unit                 = var.size_unit
  droplet_tag               = var.worker_tag
  redirect_http_to_https    = true
  enable_proxy_protocol     = false
  http_idle_timeout_seconds = 60

  forwarding_rule {
    entry_protocol   = "https"
    entry_port       = 443
    target_protocol  = "https"
    target_port      = var.gateway_https_node_port
    certificate_name = digitalocean_certificate.this.name
    tls_passthrough  = false
  }

  forwarding_rule {
    entry_protocol  = "http"
    entry_port      = 80
    target_protocol = "http"
    target_port     = var.gateway_http_node_port
  }

  healthcheck {
    protocol                 = "tcp"
    port                     = var.gateway_https_node_port
    check_interval_seconds   = 10
    response_timeout_seconds = 5
    healthy_threshold        = 3
    unhealthy_threshold      = 3
  }
}
