output "function_uris" {
  description = "Cloud Run URI of every deployed function, by function key."
  value       = { for key, fn in google_cloudfunctions2_function.function : key => fn.service_config[0].uri }
}

output "api_base_url" {
  description = "Base URL of the public API: the load balancer's first domain, or empty when the load balancer is disabled (use function_uris)."
  value       = var.enable_load_balancer && length(var.lb_domains) > 0 ? "https://${var.lb_domains[0]}" : ""
}

output "load_balancer_ip" {
  description = "IPv4 address to point the lb_domains DNS A records at (empty when the load balancer is disabled)."
  value       = try(google_compute_global_address.api[0].address, "")
}

output "api_routes" {
  description = "The production path map: route priority, target function, optional method and path patterns; unmatched paths go to default_function."
  value = {
    routes           = local.lb_routes
    default_function = local.lb_default_function
  }
}

output "upload_bucket" {
  description = "Uploads bucket (RAGLINE_UPLOAD_BUCKET); objects dropped here are ingested."
  value       = google_storage_bucket.uploads.name
}

output "work_bucket" {
  description = "Work bucket of parsed JSON (RAGLINE_WORK_BUCKET)."
  value       = google_storage_bucket.work.name
}

output "cloudsql_connection_name" {
  description = "Cloud SQL connection name project:region:instance (RAGLINE_CLOUDSQL_INSTANCE)."
  value       = google_sql_database_instance.main.connection_name
}

output "db_name" {
  description = "Database name (RAGLINE_DB_NAME)."
  value       = google_sql_database.main.name
}

output "db_users" {
  description = "IAM database user of each function identity (RAGLINE_DB_USER); migrations grant them table privileges."
  value       = { for key, user in google_sql_user.function : key => user.name }
}

output "migrator_db_user" {
  description = "IAM database user that applies migrations (empty when migrator_service_account_email is unset)."
  value       = try(google_sql_user.migrator[0].name, "")
}

output "topics" {
  description = "Pub/Sub topic names by key (RAGLINE_TOPIC_*)."
  value       = { for key, topic in google_pubsub_topic.topic : key => topic.name }
}

output "subscriptions" {
  description = "Push subscriptions by function key, including the dead-letter one."
  value = merge(
    { for key, sub in google_pubsub_subscription.step : key => sub.name },
    { dead_letter = google_pubsub_subscription.dead_letter.name },
  )
}

output "tasks_queue" {
  description = "Cloud Tasks queue of embed tasks (RAGLINE_TASKS_QUEUE) and its location."
  value = {
    name     = google_cloud_tasks_queue.embed.name
    location = google_cloud_tasks_queue.embed.location
  }
}

output "sweep_job" {
  description = "Cloud Scheduler job that POSTs to the sweep function (name and cron schedule, Etc/UTC)."
  value = {
    name     = google_cloud_scheduler_job.sweep.name
    schedule = google_cloud_scheduler_job.sweep.schedule
  }
}

output "embed_url" {
  description = "Target URL of embed tasks (RAGLINE_EMBED_URL)."
  value       = local.embed_url
}

output "service_accounts" {
  description = "Runtime service account email of each function identity, and of each invoker."
  value = {
    functions = { for key, sa in google_service_account.function : key => sa.email }
    invokers  = { for key, sa in google_service_account.invoker : key => sa.email }
  }
}

output "openai_secret_id" {
  description = "Secret Manager secret to add the OpenAI API key to (gcloud secrets versions add)."
  value       = google_secret_manager_secret.openai_api_key.secret_id
}
