output "cluster_id" {
  description = "ID of the DOKS cluster."
  value       = digitalocean_kubernetes_cluster.this.id
}

output "cluster_urn" {
  description = "URN of the cluster (for projects)."
  value       = digitalocean_kubernetes_cluster.this.urn
}

output "endpoint" {
  description = "Kubernetes API endpoint."
  value       = digitalocean_kubernetes_cluster.this.endpoint
}

output "kubeconfig" {
  description = "Raw kubeconfig of the cluster."
  value       = digitalocean_kubernetes_cluster.this.kube_config[0].raw_config
  sensitive   = true
}

output "worker_tag" {
  description = "Droplet tag of the worker nodes (load balancer target)."
  value       = "${var.name}-workers"
}
