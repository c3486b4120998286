variable "region" {
  description = "DigitalOcean region of the staging environment."
  type        = string
  default     = "nyc3"
}

variable "hostname" {
  description = "Host name of the staging environment (DNS hosted by DigitalOcean)."
  type        = string
  default     = "staging.todo.example.com"
}
