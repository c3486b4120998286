variable "name" {
  description = "Load balancer name."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "worker_tag" {
  description = "Droplet tag of the cluster's workers (targets)."
  type        = string
}

variable "domains" {
  description = "Host names on the certificate (their DNS must be hosted by DigitalOcean for Let's Encrypt)."
  type        = list(string)
}

variable "size_unit" {
  description = "Load balancer size units (1 unit = 10k connections)."
  type        = number
  default     = 1
}

variable "gateway_https_node_port" {
  description = "NodePort of the Envoy Gateway HTTPS listener."
  type        = number
  default     = 30443
}

variable "gateway_http_node_port" {
  description = "NodePort of the Envoy Gateway HTTP listener."
  type        = number
  default     = 30080
}
