variable "region" {
  description = "DigitalOcean region of the dev environment."
  type        = string
  default     = "nyc3"
}

variable "hostname" {
  description = "Host name of the dev environment (DNS hosted by DigitalOcean)."
  type        = string
  default     = "dev.todo.example.com"
}
