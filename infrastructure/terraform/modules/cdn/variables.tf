variable "account_id" {
  description = "Cloudflare account ID."
  type        = string
}

variable "zone_id" {
  description = "Cloudflare zone of the public hostname."
  type        = string
}

variable "hostname" {
  description = "Public hostname, e.g. todo.example.com."
  type        = string
}

variable "origins" {
  description = "Region name => regional origin host name (served by that region's load balancer)."
  type        = map(string)
}

variable "primary_origin" {
  description = "Key of var.origins used when every pool is unhealthy (the write primary)."
  type        = string
}
