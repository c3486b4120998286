output "vpc_id" {
  description = "UUID of the VPC."
  value       = digitalocean_vpc.this.id
}

output "ip_range" {
  description = "CIDR of the VPC."
  value       = digitalocean_vpc.this.ip_range
}
