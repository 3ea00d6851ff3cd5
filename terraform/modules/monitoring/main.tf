# Monitoring of one environment (issue 16 point 6): what hurts users first, with an alert for each
# and one dashboard.
#
# HTTP answers come from Cloud Run's own request metric (run.googleapis.com/request_count), which
# counts every answer, those the code never writes (a crash, an out-of-memory kill, a timeout, a
# call refused by IAM before the code sees it) included. Everything else comes from the lines the
# code logs, as log-based metrics: their filters name each line by its message and read its fields;
# terraform/checks (monitoring) holds every message and field named here to the code that logs it.

terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
  }
}

locals {
  # The lines the functions write: JSON on stdout, one log entry each (common/log.py).
  code_lines     = "resource.type=\"cloud_run_revision\" AND log_id(\"run.googleapis.com/stdout\")"
  chat_lines     = "${local.code_lines} AND resource.labels.service_name=\"${var.services[var.chat]}\""
  worker_lines   = "${local.code_lines} AND resource.labels.service_name=\"${var.services[var.worker]}\""
  user_facing    = [for entry, service in var.services : service if entry != var.worker]
  requests       = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\""
  user_requests  = "${local.requests} AND resource.label.service_name=one_of(\"${join("\", \"", local.user_facing)}\")"
  worker_answers = "${local.requests} AND resource.label.service_name=\"${var.services[var.worker]}\""
  channels       = [for channel in google_monitoring_notification_channel.email : channel.name]

  # The time series of each log-based metric below.
  logged = {
    for key, metric in {
      first_token         = google_logging_metric.first_token
      chat_turns          = google_logging_metric.chat_turns
      model_failures      = google_logging_metric.model_failures
      sweeps              = google_logging_metric.sweeps
      approvals_overdue   = google_logging_metric.approvals_overdue
      budget_mostly_spent = google_logging_metric.budget_mostly_spent
    } : key => "metric.type=\"logging.googleapis.com/user/${metric.name}\" AND resource.type=\"cloud_run_revision\""
  }
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  project      = var.project_id
  display_name = "CSCX ${var.environment} alerts"
  type         = "email"
  labels       = { email_address = var.alert_email }
  user_labels  = var.labels
}

# -- log-based metrics: the lines the code writes ------------------------------------------------

# common/agent/chat.py, at the end of every turn: "chat turn" with first_token_ms (absent when the
# turn said nothing), finish_reason, status, provider, model, session_id, turn_ms.
resource "google_logging_metric" "first_token" {
  project     = var.project_id
  name        = "${var.name_prefix}/chat_first_token"
  description = "Chat: from the request's arrival to the first text or tool part, per turn that said something."
  filter      = "${local.chat_lines} AND jsonPayload.message=\"chat turn\" AND jsonPayload.first_token_ms>=0"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "Chat time to first token"
    labels {
      key         = "provider"
      description = "claude or gemini"
    }
    labels {
      key         = "model"
      description = "The model the turn ran on"
    }
  }
  value_extractor = "EXTRACT(jsonPayload.first_token_ms)"
  label_extractors = {
    provider = "EXTRACT(jsonPayload.provider)"
    model    = "EXTRACT(jsonPayload.model)"
  }
  # The alert's threshold (2,000 ms by default) is a bound, so a percentile is judged on the right side of it.
  bucket_options {
    explicit_buckets {
      bounds = sort(distinct(concat([100, 200, 300, 500, 750, 1000, 1500, 3000, 5000, 10000, 30000], [var.first_token_p95_ms])))
    }
  }
}

resource "google_logging_metric" "chat_turns" {
  project     = var.project_id
  name        = "${var.name_prefix}/chat_turns"
  description = "Chat turns, by how they ended."
  filter      = "${local.chat_lines} AND jsonPayload.message=\"chat turn\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    display_name = "Chat turns"
    labels {
      key         = "finish_reason"
      description = "The stream's finish reason (stop, length, error, ...) or abort"
    }
    labels {
      key         = "provider"
      description = "claude or gemini"
    }
  }
  label_extractors = {
    finish_reason = "EXTRACT(jsonPayload.finish_reason)"
    provider      = "EXTRACT(jsonPayload.provider)"
  }
}

# common/llm/__init__.py (log_failure), from the chat's agent loop and the contract parse: "model
# call failed" with provider, model, error, retryable, retried (false: it ended the turn or parse).
resource "google_logging_metric" "model_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}/model_failures"
  description = "Model calls that failed: retried, or the end of a chat turn or a contract parse."
  filter      = "${local.code_lines} AND jsonPayload.message=\"model call failed\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    display_name = "Model calls failed"
    labels {
      key         = "provider"
      description = "claude or gemini"
    }
    labels {
      key         = "retried"
      description = "true when the call is tried again, false when it ended the turn or parse"
    }
  }
  label_extractors = {
    provider = "EXTRACT(jsonPayload.provider)"
    retried  = "EXTRACT(jsonPayload.retried)"
  }
}

# common/actions/sweep.py, every call of the worker's /sweep: "sweep" with what each round did and
# oldest_undone_seconds, how long the oldest approval not carried out yet has waited since it was
# decided (0 when none; null when it could not be read).
resource "google_logging_metric" "sweeps" {
  project     = var.project_id
  name        = "${var.name_prefix}/sweeps"
  description = "Calls of the worker's sweep (Cloud Scheduler, every 5 minutes)."
  filter      = "${local.worker_lines} AND jsonPayload.message=\"sweep\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    display_name = "Sweeps"
  }
}

resource "google_logging_metric" "approvals_overdue" {
  project     = var.project_id
  name        = "${var.name_prefix}/approvals_overdue"
  description = "Sweeps that found an approval not carried out ${var.approval_overdue_seconds} s after its decision."
  filter      = "${local.worker_lines} AND jsonPayload.message=\"sweep\" AND jsonPayload.oldest_undone_seconds>${var.approval_overdue_seconds}"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    display_name = "Sweeps that saw an overdue approval"
  }
}

# common/usage.py, once when a user's day crosses 80% of the budget: "model budget mostly spent"
# with uid, tokens_used, token_budget, share.
resource "google_logging_metric" "budget_mostly_spent" {
  project     = var.project_id
  name        = "${var.name_prefix}/budget_mostly_spent"
  description = "Users whose day of model tokens crossed 80% of the budget."
  filter      = "${local.code_lines} AND jsonPayload.message=\"model budget mostly spent\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    display_name = "Users near their model budget"
  }
}

# -- alerts --------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "server_errors" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: 5xx answers of a user-facing function"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = var.labels

  conditions {
    display_name = "More than ${var.server_error_ratio * 100}% of a function's answers are 5xx"
    condition_threshold {
      filter                  = "${local.user_requests} AND metric.label.response_code_class=\"5xx\""
      denominator_filter      = local.user_requests
      comparison              = "COMPARISON_GT"
      threshold_value         = var.server_error_ratio
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A function answers 5xx: Logs Explorer, `resource.labels.service_name` of the incident and `severity>=ERROR` (each unexpected error is logged with its request id). A 503 is a dependency (Firestore, the queue) unavailable; a 500 is a bug."
  }

  notification_channels = local.channels
}

resource "google_monitoring_alert_policy" "worker_deliveries" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: worker deliveries refused or failing"
  combiner     = "OR"
  severity     = "CRITICAL"
  user_labels  = var.labels

  conditions {
    display_name = "A delivery to the worker was refused (401 or 403)"
    condition_threshold {
      filter          = "${local.worker_answers} AND metric.label.response_code=one_of(\"401\", \"403\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "More than ${var.worker_failures} deliveries answered 5xx in 15 minutes"
    condition_threshold {
      filter          = "${local.worker_answers} AND metric.label.response_code_class=\"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.worker_failures
      duration        = "0s"
      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Refused: the worker or Cloud Run's IAM check turned Cloud Tasks or Cloud Scheduler away (the worker logs `authentication failed` with its reason; a 403 with no such line is IAM). Nothing approved is carried out until it is fixed. Failing: Google or Firestore unavailable, or a bug (`severity>=ERROR` on the worker)."
  }

  notification_channels = local.channels
}

resource "google_monitoring_alert_policy" "approvals_overdue" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: approved actions not carried out"
  combiner     = "OR"
  severity     = "CRITICAL"
  user_labels  = var.labels

  conditions {
    display_name = "An approval waits more than ${var.approval_overdue_seconds} s"
    condition_threshold {
      filter          = local.logged.approvals_overdue
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  # Without sweeps nobody would see an approval waiting: three missed calls are an incident too.
  conditions {
    display_name = "The sweep has not run for 15 minutes"
    condition_absent {
      filter   = local.logged.sweeps
      duration = "900s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The sweep's `sweep` line (the worker's logs) says how long the oldest approval not carried out yet has waited (`oldest_undone_seconds`). Look at the worker's deliveries (refused or failing?), the queue (paused, out of attempts?) and the Cloud Scheduler job `cscx-sweep`."
  }

  notification_channels = local.channels
}

resource "google_monitoring_alert_policy" "model_failures" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: model errors"
  combiner     = "OR"
  severity     = "ERROR"
  user_labels  = var.labels

  conditions {
    display_name = "More than ${var.model_failures} model calls ended a turn or a parse in error in 10 minutes"
    condition_threshold {
      filter          = "${local.logged.model_failures} AND metric.label.retried=\"false\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.model_failures
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.provider"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The `model call failed` lines say which provider, model and error. Overloaded or rate-limited (429, 529): wait, or move CSMs to the other provider (their default in Settings). 401/403: the Anthropic key (Secret Manager) or Vertex AI's grant."
  }

  notification_channels = local.channels
}

resource "google_monitoring_alert_policy" "first_token" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: chat slow to its first token"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = var.labels

  conditions {
    display_name = "Time to first token p95 above ${var.first_token_p95_ms} ms over 15 minutes"
    condition_threshold {
      filter          = local.logged.first_token
      comparison      = "COMPARISON_GT"
      threshold_value = var.first_token_p95_ms
      duration        = "0s"
      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["metric.label.provider"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "`chat turn` lines carry `first_token_ms` per turn, with provider and model. Slow on one provider: that provider. Slow everywhere: cold starts (keep an instance warm: `min_instances`) or Firestore."
  }

  notification_channels = local.channels
}

# One notification per user and hour, naming them: a day near its budget is a person, not a rate.
resource "google_monitoring_alert_policy" "budget" {
  project      = var.project_id
  display_name = "CSCX ${var.environment}: a user's day of model tokens near the budget"
  combiner     = "OR"
  severity     = "WARNING"
  user_labels  = var.labels

  conditions {
    display_name = "A user crossed 80% of the daily model budget"
    condition_matched_log {
      filter = "${local.code_lines} AND jsonPayload.message=\"model budget mostly spent\""
      label_extractors = {
        uid          = "EXTRACT(jsonPayload.uid)"
        tokens_used  = "EXTRACT(jsonPayload.tokens_used)"
        token_budget = "EXTRACT(jsonPayload.token_budget)"
      }
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "User $${log.extracted_label.uid} has used $${log.extracted_label.tokens_used} of $${log.extracted_label.token_budget} model tokens today (UTC). A CSM's heavy day stays well below the budget (README: model spend): look at what they ran (`model usage` lines with their uid) before raising CSCX_DAILY_TOKEN_BUDGET."
  }

  notification_channels = local.channels
}
