variable "name" {
  description = "VPC name, e.g. todo-prod-nyc3."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug (nyc3, ams3, ...)."
  type        = string
}

variable "ip_range" {
  description = "Private CIDR of the VPC; must match the `vpc` ipBlock of the k8s overlay (docs/deployment.md)."
  type        = string
}
