output "cluster_ids" {
  description = "DOKS cluster IDs by region."
  value = {
    (var.primary_region)   = module.region_primary.cluster_id
    (var.secondary_region) = module.region_secondary.cluster_id
  }
}

output "load_balancer_ips" {
  description = "Regional load balancer IPs (Cloudflare origins)."
  value = {
    (var.primary_region)   = module.region_primary.load_balancer_ip
    (var.secondary_region) = module.region_secondary.load_balancer_ip
  }
}

output "database_uris" {
  description = "Private postgres:// URIs by region, for each cluster's todo-postgres Secret."
  value = {
    (var.primary_region)   = module.region_primary.database_uri
    (var.secondary_region) = module.region_secondary.database_uri
  }
  sensitive = true
}

output "registry_endpoint" {
  description = "Container registry of the prod images."
  value       = module.registry.endpoint
}
