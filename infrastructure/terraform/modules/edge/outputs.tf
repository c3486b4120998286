output "ip" {
  description = "Public IPv4 of the load balancer."
  value       = digitalocean_loadbalancer.this.ip
}

output "id" {
  description = "ID of the load balancer."
  value       = digitalocean_loadbalancer.this.id
}
