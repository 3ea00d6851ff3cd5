output "tasks_queue" {
  description = "The queue's full name, projects/P/locations/L/queues/Q (CSCX_TASKS_QUEUE)."
  value       = google_cloud_tasks_queue.actions.id
}

output "tasks_queue_name" {
  description = "The queue's short name."
  value       = google_cloud_tasks_queue.actions.name
}

output "tasks_service_account_email" {
  description = "The service account whose OIDC token Cloud Tasks sends the worker."
  value       = google_service_account.tasks.email
}

output "tasks_service_account_id" {
  description = "The tasks service account's resource name."
  value       = google_service_account.tasks.name
}

output "contracts_bucket" {
  description = "The bucket of contract files."
  value       = google_storage_bucket.contracts.name
}

output "sources_bucket" {
  description = "The bucket of the functions' source archives."
  value       = google_storage_bucket.sources.name
}

output "build_service_account" {
  description = "The service account that builds the functions (its resource name)."
  value       = google_service_account.build.id

  # A build may start only once the account may write its logs and image and read the source,
  # and IAM has had a minute to see it.
  depends_on = [time_sleep.build_permissions]
}

output "contract_file_deleter_role" {
  description = "The custom role that deletes contract files."
  value       = google_project_iam_custom_role.contract_file_deleter.id
}

output "secret_ids" {
  description = "The secrets, by what they hold (each checked to exist)."
  value       = { for name, secret in data.google_secret_manager_secret.this : name => secret.secret_id }
}

output "rules_release" {
  description = "The released Firestore rules."
  value       = google_firebaserules_release.firestore.name
}

output "hosting_site" {
  description = "The Firebase Hosting site of the console."
  value       = google_firebase_hosting_site.console.site_id
}

output "web_app_firebase_config" {
  description = "The console's Firebase configuration: its web app's API key and auth domain (neither is a secret)."
  value = {
    apiKey     = data.google_firebase_web_app_config.console.api_key
    authDomain = data.google_firebase_web_app_config.console.auth_domain
  }
}
