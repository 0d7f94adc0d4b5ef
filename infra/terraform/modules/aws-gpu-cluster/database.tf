# Optional RDS PostgreSQL for the MLflow backend store. The master password is
# generated and kept by RDS in Secrets Manager (manage_master_user_password),
# so no random provider is needed and no password sits in variables.

resource "aws_db_subnet_group" "mlflow" {
  count      = var.create_database ? 1 : 0
  name       = "${var.name}-mlflow"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_security_group" "mlflow_db" {
  count       = var.create_database ? 1 : 0
  name        = "${var.name}-mlflow-db"
  description = "PostgreSQL for MLflow: reachable from the EKS nodes only"
  vpc_id      = aws_vpc.this.id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "mlflow_db_from_nodes" {
  count                        = var.create_database ? 1 : 0
  security_group_id            = aws_security_group.mlflow_db[0].id
  description                  = "PostgreSQL from pods on the EKS nodes (cluster security group)"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

resource "aws_db_parameter_group" "mlflow" {
  count  = var.create_database ? 1 : 0
  name   = "${var.name}-mlflow-pg${var.database_engine_version}"
  family = "postgres${var.database_engine_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = local.tags
}

resource "aws_db_instance" "mlflow" {
  count                         = var.create_database ? 1 : 0
  identifier                    = "${var.name}-mlflow"
  engine                        = "postgres"
  engine_version                = var.database_engine_version
  instance_class                = var.database_instance_class
  allocated_storage             = var.database_allocated_storage_gb
  max_allocated_storage         = var.database_allocated_storage_gb * 5
  storage_type                  = "gp3"
  storage_encrypted             = true
  kms_key_id                    = aws_kms_key.data.arn
  db_name                       = "mlflow"
  username                      = "mlflow"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.data.arn

  db_subnet_group_name   = aws_db_subnet_group.mlflow[0].name
  vpc_security_group_ids = [aws_security_group.mlflow_db[0].id]
  parameter_group_name   = aws_db_parameter_group.mlflow[0].name
  publicly_accessible    = false
  multi_az               = var.database_multi_az

  iam_database_authentication_enabled = true
  backup_retention_period             = 7
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  deletion_protection                 = var.database_deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-mlflow-final"
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  performance_insights_enabled        = var.database_performance_insights
  performance_insights_kms_key_id     = var.database_performance_insights ? aws_kms_key.data.arn : null

  tags = local.tags
}

# The platform module (kubernetes/helm only) needs the password as a value.
# RDS rotates this secret (every 7 days by default): re-running terraform apply
# re-reads it and rolls MLflow; see envs/aws/README.md.
data "aws_secretsmanager_secret_version" "mlflow_db" {
  count     = var.create_database ? 1 : 0
  secret_id = aws_db_instance.mlflow[0].master_user_secret[0].secret_arn
}
