variable "project_id" {
  description = "The Google Cloud project of the environment."
  type        = string
}

variable "environment" {
  description = "dev, staging or prod: in every alert's and the dashboard's name."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the log-based metrics' names."
  type        = string
}

variable "services" {
  description = "Each entry point's Cloud Run service (a 2nd gen function's service has the function's name)."
  type        = map(string)
}

variable "worker" {
  description = "The entry point Cloud Tasks and Cloud Scheduler call (its deliveries are watched apart)."
  type        = string
  default     = "execute_action"
}

variable "chat" {
  description = "The entry point that streams chat turns (its log line carries the time to the first token)."
  type        = string
  default     = "chat_stream"
}

variable "alert_email" {
  description = "Where alerts are e-mailed; empty: no notification channel (incidents still open in Cloud Monitoring)."
  type        = string
  default     = ""
}

variable "server_error_ratio" {
  description = "A user-facing function alerts when more than this share of its answers are 5xx over 5 minutes."
  type        = number
  default     = 0.05
}

variable "worker_failures" {
  description = "The worker alerts when it answers more than this many deliveries with a 5xx in 15 minutes (a 503 asks Cloud Tasks to come back: a few are normal)."
  type        = number
  default     = 10
}

variable "approval_overdue_seconds" {
  description = "An approval not carried out this long after its decision alerts (as the sweep sees it, every 5 minutes)."
  type        = number
  default     = 600
}

variable "model_failures" {
  description = "Alert when more than this many model calls end a chat turn or a contract parse with an error in 10 minutes."
  type        = number
  default     = 5
}

variable "first_token_p95_ms" {
  description = "Alert when the 95th percentile of chat's time to the first token is above this over 15 minutes."
  type        = number
  default     = 2000
}

variable "labels" {
  description = "User labels of the alert policies and the notification channel."
  type        = map(string)
  default     = {}
}
