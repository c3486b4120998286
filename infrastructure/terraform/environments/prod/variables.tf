variable "primary_region" {
  description = "Region of the write primary."
  type        = string
  default     = "nyc3"
}

variable "secondary_region" {
  description = "Second region (read traffic, failover target)."
  type        = string
  default     = "ams3"
}

variable "hostname" {
  description = "Public hostname served through Cloudflare."
  type        = string
  default     = "todo.example.com"
}

variable "node_size" {
  description = "Worker droplet size in both regions."
  type        = string
  default     = "s-8vcpu-16gb"
}

variable "cloudflare_account_id" {
  description = "Cloudflare account that owns the load balancer pools."
  type        = string
}

variable "cloudflare_zone_id" {
  description = "Cloudflare zone of var.hostname."
  type        = string
}
