output "dashboard" {
  description = "The dashboard's resource name (Cloud Monitoring, Dashboards)."
  value       = google_monitoring_dashboard.cscx.id
}

output "alert_policies" {
  description = "Every alert policy, by what it watches."
  value = {
    server_errors     = google_monitoring_alert_policy.server_errors.name
    worker_deliveries = google_monitoring_alert_policy.worker_deliveries.name
    approvals_overdue = google_monitoring_alert_policy.approvals_overdue.name
    model_failures    = google_monitoring_alert_policy.model_failures.name
    first_token       = google_monitoring_alert_policy.first_token.name
    budget            = google_monitoring_alert_policy.budget.name
  }
}
