output "function_urls" {
  description = "Each entry point's URL."
  value       = module.cscx.function_urls
}

output "oauth_redirect_uri" {
  description = "Register this redirect URI with the Google OAuth client."
  value       = module.cscx.oauth_redirect_uri
}

output "worker_url" {
  description = "The worker's URL (Cloud Tasks only)."
  value       = module.cscx.worker_url
}

output "tasks_queue" {
  description = "The Cloud Tasks queue of the worker."
  value       = module.cscx.tasks_queue
}

output "contracts_bucket" {
  description = "The bucket of contract files."
  value       = module.cscx.contracts_bucket
}
