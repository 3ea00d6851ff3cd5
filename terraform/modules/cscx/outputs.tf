output "function_urls" {
  description = "Each entry point's URL."
  value       = { for key, function in module.functions : key => function.url }
}

output "oauth_redirect_uri" {
  description = "The redirect URI to register with the Google OAuth client."
  value       = local.settings.CSCX_OAUTH_REDIRECT_URL
}

output "worker_url" {
  description = "The worker's URL: where Cloud Tasks delivers, and its OIDC tokens' audience."
  value       = local.settings.CSCX_WORKER_URL
}

output "tasks_queue" {
  description = "The Cloud Tasks queue of the worker."
  value       = module.platform.tasks_queue
}

output "tasks_service_account" {
  description = "The service account of the worker's OIDC tokens."
  value       = module.platform.tasks_service_account_email
}

output "contracts_bucket" {
  description = "The bucket of contract files."
  value       = module.platform.contracts_bucket
}

output "service_accounts" {
  description = "Each function's runtime service account."
  value       = { for key, function in module.functions : key => function.service_account_email }
}

output "hosting_site" {
  description = "The Firebase Hosting site that serves the console."
  value       = module.platform.hosting_site
}

output "console_url" {
  description = "Where the console is served."
  value       = local.console_url
}

output "web_config" {
  description = "The console's /config.json (make deploy writes it into web/dist): its Firebase configuration and the functions' base URLs."
  value = {
    firebase = merge(module.platform.web_app_firebase_config, { projectId = var.project_id })
    api = {
      crud           = local.urls.crud
      chat_stream    = local.urls.chat_stream
      approve_action = local.urls.approve_action
      contract_parse = local.urls.contract_parse
    }
    authEmulator = null
  }
}

output "dashboard" {
  description = "The monitoring dashboard (Cloud Monitoring, Dashboards)."
  value       = module.monitoring.dashboard
}
