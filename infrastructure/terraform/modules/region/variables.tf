variable "name" {
  description = "Prefix of every resource in the region, e.g. todo-prod-nyc3."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug."
  type        = string
}

variable "vpc_ip_range" {
  description = "VPC CIDR (inside the overlay's `vpc` ipBlock)."
  type        = string
}

variable "hostname" {
  description = "Regional host name served by the load balancer (certificate subject)."
  type        = string
}

variable "kubernetes_version_prefix" {
  description = "Kubernetes minor to track."
  type        = string
  default     = "1.33."
}

variable "ha_control_plane" {
  description = "Highly available DOKS control plane."
  type        = bool
  default     = true
}

variable "node_size" {
  description = "Worker droplet size."
  type        = string
  default     = "s-4vcpu-8gb"
}

variable "min_nodes" {
  description = "Minimum workers of the auto-scaling pool."
  type        = number
  default     = 3
}

variable "max_nodes" {
  description = "Maximum workers of the auto-scaling pool."
  type        = number
  default     = 6
}

variable "db_size" {
  description = "Managed PostgreSQL node size."
  type        = string
  default     = "db-s-2vcpu-4gb"
}

variable "db_node_count" {
  description = "Managed PostgreSQL nodes (2+ = HA standby)."
  type        = number
  default     = 2
}
