variable "name" {
  description = "Cluster name; also the tag of its nodes."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug."
  type        = string
}

variable "vpc_id" {
  description = "VPC the cluster joins."
  type        = string
}

variable "vpc_ip_range" {
  description = "CIDR of that VPC; the only source the worker firewall admits."
  type        = string
}

variable "kubernetes_version_prefix" {
  description = "Kubernetes minor to track, e.g. \"1.33.\" (latest patch is used)."
  type        = string
  default     = "1.33."
}

variable "ha_control_plane" {
  description = "Highly available control plane (recommended outside dev)."
  type        = bool
  default     = true
}

variable "node_size" {
  description = "Droplet size slug of the worker nodes."
  type        = string
  default     = "s-4vcpu-8gb"
}

variable "min_nodes" {
  description = "Lower bound of the auto-scaling node pool."
  type        = number
  default     = 3
}

variable "max_nodes" {
  description = "Upper bound of the auto-scaling node pool."
  type        = number
  default     = 6

  validation {
    condition     = var.max_nodes >= 1
    error_message = "max_nodes must be at least 1."
  }
}
