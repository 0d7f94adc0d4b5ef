# AWS GPU cluster for hairseg: VPC, EKS (system + GPU node groups), IRSA roles,
# ECR, an S3 artifact bucket and an optional RDS PostgreSQL for MLflow.
# Conventions follow terraform-aws-modules/eks (naming, IRSA trust, launch
# templates) but the resources are written out so the module needs nothing but
# hashicorp/aws. Files: network.tf, eks.tf, identities.tf, storage.tf, database.tf.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
  # Local Zones and Wavelength zones cannot host EKS control-plane subnets.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  azs        = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix

  tags = merge(var.tags, {
    "hairseg.io/cluster" = var.name
    "managed-by"         = "terraform"
  })

  # gpu_node_labels, gpu_taint and system_node_labels: gpu_node_contract.tf, a link
  # to ../../shared/gpu_node_contract.tf (the same for every cloud).
  gpu_taints = [local.gpu_taint]

  # 10.40.0.0/16 -> private /20s at 10.40.0.0, .16.0, .32.0; public /24s at 10.40.240.0 ...
  private_subnets = [for i in range(var.availability_zone_count) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i in range(var.availability_zone_count) : cidrsubnet(var.vpc_cidr, 8, 240 + i)]

  bucket_name = "${var.name}-artifacts-${local.account_id}"
  oidc_issuer = trimprefix(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://")
}
