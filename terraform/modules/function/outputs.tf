output "url" {
  description = "The function's URL."
  value       = google_cloudfunctions2_function.this.url
}

output "service_account_email" {
  description = "The runtime service account."
  value       = google_service_account.runtime.email
}

output "service" {
  description = "The Cloud Run service behind the function."
  value       = google_cloudfunctions2_function.this.service_config[0].service
}
