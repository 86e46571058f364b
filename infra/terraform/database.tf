# Cloud SQL for PostgreSQL with pgvector (CREATE EXTENSION vector is run by the migrations).
# Functions connect only through the Cloud SQL Python Connector with IAM database
# authentication: no passwords exist anywhere, the instance has a public IP with no authorized
# networks, and connector_enforcement rejects anything that is not a connector.

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_79:Default POSTGRES_17 is what the schema and pgvector >= 0.8 are tested on; var.database_version admits POSTGRES_18 when it is.
  #checkov:skip=CKV_GCP_60:Public IP with no authorized networks; connector_enforcement=REQUIRED admits only IAM-authorized connector (mTLS) connections, so no VPC connector is needed.
  #checkov:skip=CKV_GCP_110:pgAudit needs CREATE EXTENSION pgaudit and a logging policy; the application keeps its own audit log. Enable if compliance requires it.
  #checkov:skip=CKV2_GCP_13:log_duration logs every statement of a chatty RAG workload; Query Insights records latency instead.
  name                = "${var.name_prefix}-pg"
  project             = var.project_id
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.db_tier
    edition                     = var.db_edition
    availability_type           = var.db_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    connector_enforcement       = "REQUIRED"
    user_labels                 = var.labels

    ip_configuration {
      # Public IP, but no authorized networks: only the connector (IAM-authorized, mutual TLS
      # with ephemeral client certificates) reaches it, so the functions need no VPC connector.
      ipv4_enabled = true
      ssl_mode     = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.db_backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    # Connection and lock diagnostics (CIS PostgreSQL recommendations).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl" # schema changes only: migrations are the only DDL
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_sql_database" "main" {
  name     = var.db_name
  project  = var.project_id
  instance = google_sql_database_instance.main.name
}

# One IAM database user per function identity. PostgreSQL IAM user names are the service
# account email without ".gserviceaccount.com" (RAGLINE_DB_USER carries exactly this). Table
# privileges are granted by the migrations, not here.
resource "google_sql_user" "function" {
  for_each = google_service_account.function

  name     = trimsuffix(each.value.email, ".gserviceaccount.com")
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# The identity that applies migrations (owns the schema, creates the vector extension).
resource "google_sql_user" "migrator" {
  count = var.migrator_service_account_email == "" ? 0 : 1

  name     = trimsuffix(var.migrator_service_account_email, ".gserviceaccount.com")
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
