# The sweep (DESIGN §6): every 5 minutes Cloud Scheduler POSTs the worker's /sweep, which enqueues
# approved actions that have no task, expires overdue proposals and re-drives executions whose lease
# ran out. It calls with an OIDC token of the tasks service account, the worker's one invoker, for
# the audience of Cloud Tasks' tokens (CSCX_WORKER_URL): the worker checks both, as for /execute.

resource "google_cloud_scheduler_job" "sweep" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-sweep"
  description      = "Every 5 minutes: the worker's sweep of approved, overdue and stalled actions."
  schedule         = "*/5 * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "${local.functions.execute_action.timeout_seconds}s"

  # A failed run is not retried: the next one comes five minutes later.
  retry_config {
    retry_count = 0
  }

  http_target {
    uri         = "${local.settings.CSCX_WORKER_URL}/sweep"
    http_method = "POST"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = module.platform.tasks_service_account_email
      audience              = local.settings.CSCX_WORKER_URL
    }
  }
}
