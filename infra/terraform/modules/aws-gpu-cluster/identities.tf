# IRSA: the cluster's OIDC issuer becomes an IAM identity provider and each
# role trusts exactly one namespace/service-account pair (the ":sub" claim)
# and the STS audience (the ":aud" claim), as terraform-aws-modules/iam's
# iam-role-for-service-accounts-eks does.

resource "aws_iam_openid_connect_provider" "eks" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = var.oidc_thumbprints
  tags            = local.tags
}

locals {
  # Every IRSA role of the module: the workload identities plus the two
  # kube-system controllers the cluster itself needs.
  irsa_subjects = merge(
    { for k, v in var.workload_identities : k => { namespace = v.namespace, service_account = v.service_account } },
    {
      cluster-autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
      ebs-csi            = { namespace = "kube-system", service_account = "ebs-csi-controller-sa" }
    },
  )
}

data "aws_iam_policy_document" "irsa_assume" {
  for_each = local.irsa_subjects
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# --- workload identities: artifact bucket access ----------------------------

resource "aws_iam_role" "workload" {
  for_each           = var.workload_identities
  name               = "${var.name}-${each.key}"
  description        = "IRSA for ${each.value.namespace}/${each.value.service_account}: ${each.value.bucket_access} on the artifact bucket"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume[each.key].json
  tags               = local.tags
}

data "aws_iam_policy_document" "bucket_access" {
  for_each = var.workload_identities

  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn]
  }

  statement {
    sid = "Objects"
    actions = concat(
      ["s3:GetObject", "s3:GetObjectVersion"],
      each.value.bucket_access == "readwrite" ? ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"] : [],
    )
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }

  statement {
    sid = "BucketKey"
    actions = concat(
      ["kms:Decrypt", "kms:DescribeKey"],
      each.value.bucket_access == "readwrite" ? ["kms:GenerateDataKey"] : [],
    )
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "workload" {
  for_each = var.workload_identities
  name     = "artifact-bucket-${each.value.bucket_access}"
  role     = aws_iam_role.workload[each.key].id
  policy   = data.aws_iam_policy_document.bucket_access[each.key].json
}

# --- kube-system controllers -------------------------------------------------

resource "aws_iam_role" "cluster_autoscaler" {
  name               = "${var.name}-cluster-autoscaler"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume["cluster-autoscaler"].json
  tags               = local.tags
}

data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
      "eks:DescribeNodegroup",
    ]
    resources = ["*"]
  }

  # Resize only the node groups of this cluster (EKS tags their ASGs "owned").
  statement {
    sid       = "ScaleOwnGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.cluster_autoscaler.id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${var.name}-ebs-csi"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume["ebs-csi"].json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

# The driver encrypts volumes with the data key (launch templates use it too).
data "aws_iam_policy_document" "ebs_csi_kms" {
  statement {
    actions   = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    resources = [aws_kms_key.data.arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.data.arn]
  }
}

resource "aws_iam_role_policy" "ebs_csi_kms" {
  name   = "ebs-volume-key"
  role   = aws_iam_role.ebs_csi.id
  policy = data.aws_iam_policy_document.ebs_csi_kms.json
}
