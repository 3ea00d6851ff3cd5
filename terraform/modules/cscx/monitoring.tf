# Monitoring (modules/monitoring): an alert for each of what hurts users first, e-mailed to
# var.alert_email, and one dashboard. Its log-based metrics read the lines the functions log.

module "monitoring" {
  source = "../monitoring"

  project_id  = var.project_id
  environment = var.environment
  name_prefix = var.name_prefix
  services    = local.names
  alert_email = var.alert_email
  labels      = local.labels

  # Log-based metrics need the Logging API and alerts the Monitoring API, both the platform's.
  depends_on = [module.platform]
}
