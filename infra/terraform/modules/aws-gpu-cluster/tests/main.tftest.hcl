# Offline plan-level tests: every AWS call is answered by mock_provider, and the
# data sources / computed attributes we assert on are fixed by mock_data and
# override_resource (override_during = plan makes them known at plan time).
# Run: terraform init -backend=false && terraform test   (tests/infra wraps this)

mock_provider "aws" {
  override_during = plan

  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_secretsmanager_secret_version" {
    defaults = { secret_string = "{\"username\":\"mlflow\",\"password\":\"mock-password\"}" }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      endpoint              = "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF" }] }]
      vpc_config            = { cluster_security_group_id = "sg-0123456789abcdef0" }
      certificate_authority = [{ data = "bW9jay1jYQ==" }]
    }
  }
  mock_resource "aws_eks_node_group" {
    defaults = { resources = [{ autoscaling_groups = [{ name = "eks-gpu-mock-asg" }] }] }
  }
  mock_resource "aws_db_instance" {
    defaults = { master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds-mock" }] }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::hairseg-test-artifacts-123456789012" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/mock" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF" }
  }
}

variables {
  name                         = "hairseg-test"
  region                       = "eu-west-1"
  endpoint_public_access_cidrs = ["203.0.113.0/24"]
}

run "gpu_group_scales_from_zero_with_taint_and_labels" {
  command = plan

  assert {
    condition     = aws_eks_node_group.gpu.scaling_config[0].min_size == 0 && aws_eks_node_group.gpu.scaling_config[0].desired_size == 0
    error_message = "GPU node group must start and scale back to zero nodes."
  }
  assert {
    condition     = aws_eks_node_group.gpu.scaling_config[0].max_size == 4
    error_message = "GPU node group max size must follow gpu_max_nodes (default 4)."
  }
  assert {
    condition = anytrue([for t in aws_eks_node_group.gpu.taint :
    t.key == "nvidia.com/gpu" && t.value == "present" && t.effect == "NO_SCHEDULE"])
    error_message = "GPU nodes must carry the nvidia.com/gpu=present:NoSchedule taint."
  }
  assert {
    condition     = aws_eks_node_group.gpu.labels["hairseg.io/accelerator"] == "nvidia-gpu"
    error_message = "GPU nodes must carry the hairseg.io/accelerator=nvidia-gpu label."
  }
  assert {
    condition     = aws_eks_node_group.gpu.capacity_type == "ON_DEMAND"
    error_message = "GPU capacity is on-demand unless gpu_spot is set."
  }
  assert {
    condition     = length(aws_eks_node_group.system.taint) == 0 && aws_eks_node_group.system.scaling_config[0].min_size >= 1
    error_message = "The system group is untainted and always has a node."
  }
  assert {
    condition     = aws_autoscaling_group_tag.gpu_node_template["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"].tag[0].value == "present:NoSchedule"
    error_message = "The autoscaler node-template tags must describe the GPU taint for scale-from-zero."
  }
  assert {
    condition     = output.gpu_tolerations[0].key == "nvidia.com/gpu" && output.gpu_tolerations[0].effect == "NoSchedule"
    error_message = "gpu_tolerations output must tolerate the GPU taint."
  }
  assert {
    condition     = output.gpu_node_selector == { "hairseg.io/accelerator" = "nvidia-gpu" }
    error_message = "gpu_node_selector output must be the shared cross-cloud selector."
  }
}

run "spot_capacity_when_enabled" {
  command = plan
  variables {
    gpu_spot           = true
    gpu_instance_types = ["g5.xlarge", "g4dn.xlarge"]
  }
  assert {
    condition     = aws_eks_node_group.gpu.capacity_type == "SPOT"
    error_message = "gpu_spot = true must request SPOT capacity."
  }
  assert {
    condition     = aws_eks_node_group.gpu.instance_types == tolist(["g5.xlarge", "g4dn.xlarge"])
    error_message = "Spot groups take the diversified instance type list."
  }
}

run "artifact_bucket_is_private_versioned_encrypted" {
  command = plan

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.artifacts.block_public_acls,
      aws_s3_bucket_public_access_block.artifacts.block_public_policy,
      aws_s3_bucket_public_access_block.artifacts.ignore_public_acls,
      aws_s3_bucket_public_access_block.artifacts.restrict_public_buckets,
    ])
    error_message = "All four public access block settings must be on."
  }
  assert {
    condition     = aws_s3_bucket_versioning.artifacts.versioning_configuration[0].status == "Enabled"
    error_message = "The artifact bucket must be versioned."
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.artifacts.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "The artifact bucket must use SSE-KMS."
  }
  assert {
    condition     = aws_s3_bucket.artifacts.bucket == "hairseg-test-artifacts-123456789012" && output.artifact_bucket_uri == "s3://hairseg-test-artifacts-123456789012"
    error_message = "Bucket name is <name>-artifacts-<account> and the URI is s3://<bucket>."
  }
  assert {
    condition     = aws_s3_bucket_ownership_controls.artifacts.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }
  assert {
    condition     = alltrue([for r in aws_ecr_repository.this : r.image_tag_mutability == "IMMUTABLE" && r.image_scanning_configuration[0].scan_on_push])
    error_message = "ECR repositories must be immutable and scan on push."
  }
}

run "nodes_require_imdsv2_and_encrypted_disks" {
  command = plan

  assert {
    condition     = alltrue([for lt in aws_launch_template.node : lt.metadata_options[0].http_tokens == "required" && lt.metadata_options[0].http_put_response_hop_limit == 1])
    error_message = "Every launch template must require IMDSv2 with hop limit 1."
  }
  assert {
    condition     = alltrue([for lt in aws_launch_template.node : lt.block_device_mappings[0].ebs[0].encrypted == "true"])
    error_message = "Node root volumes must be encrypted."
  }
  assert {
    condition     = aws_eks_cluster.this.encryption_config[0].resources == toset(["secrets"])
    error_message = "Kubernetes secrets must be envelope-encrypted with KMS."
  }
  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_private_access && aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["203.0.113.0/24"])
    error_message = "The private endpoint is on and the public one is limited to the allow-list."
  }
}

run "irsa_trust_is_scoped_to_one_service_account" {
  command = plan

  assert {
    condition = one([
      for c in data.aws_iam_policy_document.irsa_assume["serving"].statement[0].condition :
      c.values if c.variable == "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF:sub"
    ]) == tolist(["system:serviceaccount:hairseg-serving:hairseg-predictor"])
    error_message = "The serving role must trust only hairseg-serving/hairseg-predictor."
  }
  assert {
    condition = one([
      for c in data.aws_iam_policy_document.irsa_assume["pipelines"].statement[0].condition :
      c.values if c.variable == "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF:aud"
    ]) == tolist(["sts.amazonaws.com"])
    error_message = "IRSA trust must pin the STS audience."
  }
  assert {
    condition     = !contains(data.aws_iam_policy_document.bucket_access["serving"].statement[1].actions, "s3:PutObject")
    error_message = "Serving has read-only access to the artifact bucket."
  }
  assert {
    condition     = contains(data.aws_iam_policy_document.bucket_access["pipelines"].statement[1].actions, "s3:PutObject")
    error_message = "Pipelines can write to the artifact bucket."
  }
  assert {
    condition     = toset(keys(output.workload_identities)) == toset(["pipelines", "mlflow", "serving"])
    error_message = "workload_identities output must have one entry per identity."
  }
}

run "database_present_by_default" {
  command = plan

  assert {
    condition     = length(aws_db_instance.mlflow) == 1
    error_message = "create_database defaults to true."
  }
  assert {
    condition     = aws_db_instance.mlflow[0].storage_encrypted && !aws_db_instance.mlflow[0].publicly_accessible && aws_db_instance.mlflow[0].manage_master_user_password
    error_message = "RDS must be encrypted, private, and keep its password in Secrets Manager."
  }
  assert {
    condition     = output.mlflow_database.enabled && output.mlflow_database.database == "mlflow"
    error_message = "mlflow_database output must describe the database."
  }
}

run "database_optional" {
  command = plan
  variables {
    create_database = false
  }
  assert {
    condition     = length(aws_db_instance.mlflow) == 0 && length(aws_security_group.mlflow_db) == 0
    error_message = "create_database = false must create no RDS resources."
  }
  assert {
    condition     = !output.mlflow_database.enabled && output.mlflow_database.host == ""
    error_message = "mlflow_database.enabled must be false without a database."
  }
}

run "public_endpoint_needs_an_allow_list" {
  command = plan
  variables {
    endpoint_public_access_cidrs = []
  }
  expect_failures = [aws_eks_cluster.this]
}

run "open_world_cidr_is_rejected" {
  command = plan
  variables {
    endpoint_public_access_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.endpoint_public_access_cidrs]
}

run "non_gpu_instance_type_is_rejected" {
  command = plan
  variables {
    gpu_instance_types = ["m6i.large"]
  }
  expect_failures = [var.gpu_instance_types]
}

run "network_and_logging_defaults" {
  command = plan

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_subnet.private) == 3 && alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch])
    error_message = "One NAT gateway by default, three private subnets, no public IPs on launch."
  }
  assert {
    condition     = toset(aws_eks_cluster.this.enabled_cluster_log_types) == toset(["api", "audit", "authenticator", "controllerManager", "scheduler"])
    error_message = "All five control-plane log types are on by default."
  }
  assert {
    condition     = aws_cloudwatch_log_group.cluster.name == "/aws/eks/hairseg-test/cluster" && aws_cloudwatch_log_group.cluster.retention_in_days == 365
    error_message = "The control-plane log group must be created with the name EKS writes to and 1-year retention."
  }
  assert {
    condition     = one(one([for s in data.aws_iam_policy_document.cluster_autoscaler.statement : s.condition if s.sid == "ScaleOwnGroups"])).variable == "aws:ResourceTag/k8s.io/cluster-autoscaler/hairseg-test"
    error_message = "The autoscaler may resize only ASGs tagged as owned by this cluster."
  }
}

run "nat_gateway_per_zone" {
  command = plan
  variables {
    single_nat_gateway = false
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 3 && length(aws_eip.nat) == 3
    error_message = "single_nat_gateway = false gives one NAT gateway (and EIP) per zone."
  }
}
