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

output "console_url" {
  description = "Where the console is served (Firebase Hosting)."
  value       = module.cscx.console_url
}

output "hosting_site" {
  description = "The Firebase Hosting site of the console (make deploy publishes web/ there)."
  value       = module.cscx.hosting_site
}

output "web_config" {
  description = "The console's /config.json (make deploy writes it into web/dist)."
  value       = module.cscx.web_config
}

output "dashboard" {
  description = "The monitoring dashboard (Cloud Monitoring, Dashboards)."
  value       = module.cscx.dashboard
}
