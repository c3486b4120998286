output "endpoint" {
  description = "Registry endpoint, e.g. registry.digitalocean.com/todo-prod."
  value       = digitalocean_container_registry.this.endpoint
}

output "docker_credentials" {
  description = "dockerconfigjson for the registry-todo pull Secret."
  value       = digitalocean_container_registry_docker_credentials.pull.docker_credentials
  sensitive   = true
}
