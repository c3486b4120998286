terraform {
  required_version = ">= 1.6"

  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.55"
    }
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 4.52"
    }
  }

  # State in a DigitalOcean Spaces bucket (S3 API); pass the bucket and keys
  # with -backend-config at init (docs/deployment.md).
  backend "s3" {
    key                         = "todo/prod/terraform.tfstate"
    region                      = "us-east-1"
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
    skip_s3_checksum            = true
    use_path_style              = true
  }
}

# DIGITALOCEAN_TOKEN and CLOUDFLARE_API_TOKEN come from the environment.
provider "digitalocean" {}

provider "cloudflare" {}
