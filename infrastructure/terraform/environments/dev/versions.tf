terraform {
  required_version = ">= 1.6"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.55"
    }
  }

  # State in a DigitalOcean Spaces bucket (S3 API); pass the bucket and keys
  # with -backend-config at init (docs/deployment.md).
  backend "s3" {
    key                         = "todo/dev/terraform.tfstate"
    region                      = "us-east-1"
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
    skip_s3_checksum            = true
    use_path_style              = true
  }
}

# DIGITALOCEAN_TOKEN comes from the environment, never from a file.
provider "digitalocean" {}
