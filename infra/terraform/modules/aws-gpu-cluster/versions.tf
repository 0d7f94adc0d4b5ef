terraform {
  # terraform test with mock_provider and override_data needs >= 1.7.
  required_version = ">= 1.7.0, < 2.0.0"

  # Only hashicorp/aws: no tls/random/null, so the module initialises from a
  # filesystem mirror that holds the AWS provider alone.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 6.0"
    }
  }
}
