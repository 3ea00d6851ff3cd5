# One dashboard: what each alert watches, over time.

locals {
  # An xyChart of one or more filters, each aligned and reduced as given.
  chart = {
    for name, spec in {
      requests = {
        title   = "Answers per function, by status class (per second)"
        filters = [local.requests]
        aligner = "ALIGN_RATE"
        reducer = "REDUCE_SUM"
        by      = ["resource.label.service_name", "metric.label.response_code_class"]
      }
      worker = {
        title   = "Worker deliveries, by status (per 5 minutes)"
        filters = [local.worker_answers]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_SUM"
        by      = ["metric.label.response_code"]
      }
      first_token_p95 = {
        title   = "Chat time to first token, p95 (ms)"
        filters = [local.logged.first_token]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_PERCENTILE_95"
        by      = ["metric.label.provider"]
      }
      first_token_p50 = {
        title   = "Chat time to first token, median (ms)"
        filters = [local.logged.first_token]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_PERCENTILE_50"
        by      = ["metric.label.provider"]
      }
      turns = {
        title   = "Chat turns, by how they ended (per 5 minutes)"
        filters = [local.logged.chat_turns]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_SUM"
        by      = ["metric.label.finish_reason"]
      }
      model_failures = {
        title   = "Model calls failed, by provider and whether retried (per 5 minutes)"
        filters = [local.logged.model_failures]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_SUM"
        by      = ["metric.label.provider", "metric.label.retried"]
      }
      sweeps = {
        title = "Sweeps, and those that saw an approval overdue (per 5 minutes)"
        filters = [
          local.logged.sweeps,
          local.logged.approvals_overdue,
        ]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_SUM"
        by      = []
      }
      budget = {
        title   = "Users who crossed 80% of their daily model budget (per 5 minutes)"
        filters = [local.logged.budget_mostly_spent]
        aligner = "ALIGN_DELTA"
        reducer = "REDUCE_SUM"
        by      = []
      }
      } : name => {
      title = spec.title
      xyChart = {
        dataSets = [for filter in spec.filters : {
          plotType = "LINE"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = filter
              aggregation = {
                alignmentPeriod    = "300s"
                perSeriesAligner   = spec.aligner
                crossSeriesReducer = spec.reducer
                groupByFields      = spec.by
              }
            }
          }
        }]
        yAxis = { scale = "LINEAR" }
      }
    }
  }
}

resource "google_monitoring_dashboard" "cscx" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "CSCX ${var.environment}"
    gridLayout = {
      columns = "2"
      widgets = [
        for name in ["requests", "worker", "first_token_p95", "first_token_p50", "turns", "model_failures", "sweeps", "budget"] :
        local.chart[name]
      ]
    }
  })
}
