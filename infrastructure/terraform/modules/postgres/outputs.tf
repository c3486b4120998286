output "cluster_id" {
  description = "ID of the database cluster."
  value       = digitalocean_database_cluster.this.id
}

output "private_host" {
  description = "Host name inside the VPC."
  value       = digitalocean_database_cluster.this.private_host
}

output "port" {
  description = "Port (25060)."
  value       = digitalocean_database_cluster.this.port
}

output "database_uri" {
  description = "postgres:// URI of the app user on the private network (goes into the todo-postgres Secret)."
  value       = "postgres://${digitalocean_database_user.app.name}:${digitalocean_database_user.app.password}@${digitalocean_database_cluster.this.private_host}:${digitalocean_database_cluster.this.port}/${digitalocean_database_db.todo.name}?sslmode=require"
  sensitive   = true
}
