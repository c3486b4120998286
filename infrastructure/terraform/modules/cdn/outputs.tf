output "load_balancer_id" {
  description = "ID of the Cloudflare load balancer."
  value       = cloudflare_load_balancer.todo.id
}
