output "cluster_id" {
  description = "DOKS cluster ID (doctl kubernetes cluster kubeconfig save <id>)."
  value       = module.region.cluster_id
}

output "load_balancer_ip" {
  description = "Public IP of the load balancer; point the hostname's A record here."
  value       = module.region.load_balancer_ip
}

output "database_uri" {
  description = "Private postgres:// URI for the todo-postgres Secret."
  value       = module.region.database_uri
  sensitive   = true
}

output "registry_endpoint" {
  description = "Container registry the overlay's images: entries point at."
  value       = module.registry.endpoint
}
