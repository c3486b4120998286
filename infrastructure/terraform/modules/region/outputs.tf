output "cluster_id" {
  description = "DOKS cluster ID."
  value       = module.cluster.cluster_id
}

output "kubeconfig" {
  description = "Kubeconfig of the regional cluster."
  value       = module.cluster.kubeconfig
  sensitive   = true
}

output "load_balancer_ip" {
  description = "Public IP of the regional load balancer."
  value       = module.edge.ip
}

output "database_uri" {
  description = "Private postgres:// URI for the todo-postgres Secret."
  value       = module.database.database_uri
  sensitive   = true
}

output "vpc_ip_range" {
  description = "CIDR of the regional VPC."
  value       = module.network.ip_range
}
