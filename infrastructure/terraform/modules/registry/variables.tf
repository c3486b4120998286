variable "name" {
  description = "Registry name: images are registry.digitalocean.com/<name>/<service>."
  type        = string
}

variable "subscription_tier" {
  description = "starter, basic or professional."
  type        = string
  default     = "basic"
}

variable "region" {
  description = "Region the registry stores images in."
  type        = string
}
