variable "project_id" {
  description = "The Google Cloud project."
  type        = string
}

variable "region" {
  description = "Where the function runs."
  type        = string
}

variable "name" {
  description = "The function's name (also its Cloud Run service and its runtime service account)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.name))
    error_message = "A function name is 6 to 30 lowercase letters, digits or hyphens (it names its service account too)."
  }
}

variable "entry_point" {
  description = "The Python function that serves requests (functions/manifest.json)."
  type        = string
}

variable "description" {
  description = "What the function does."
  type        = string
  default     = ""
}

variable "runtime" {
  description = "The Cloud Functions runtime."
  type        = string
  default     = "python311"
}

variable "source_root" {
  description = "The repository root, which source_files are relative to."
  type        = string
}

variable "source_files" {
  description = "The function's archive: path in the archive => path under source_root."
  type        = map(string)

  validation {
    condition     = contains(keys(var.source_files), "main.py") && contains(keys(var.source_files), "requirements.txt")
    error_message = "The archive needs main.py (the entry point's file) and requirements.txt at its root."
  }
}

variable "source_bucket" {
  description = "The bucket that keeps source archives."
  type        = string
}

variable "build_service_account" {
  description = "The service account Cloud Build builds the function as (projects/P/serviceAccounts/E)."
  type        = string
}

variable "memory" {
  description = "Memory of an instance, e.g. 512Mi."
  type        = string
}

variable "cpu" {
  description = "CPUs of an instance, as a string (\"1\", \"2\")."
  type        = string
}

variable "timeout_seconds" {
  description = "The longest a request may take (HTTP functions: up to 3600)."
  type        = number

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600
    error_message = "An HTTP function's timeout is 1 to 3600 seconds."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once."
  type        = number

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "Concurrency is 1 to 1000."
  }
}

variable "min_instances" {
  description = "Instances kept warm."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "The most instances at once."
  type        = number
}

variable "environment_variables" {
  description = "Plain settings (never secrets)."
  type        = map(string)
}

variable "secrets" {
  description = "Secret settings: variable name => Secret Manager secret id and version."
  type = map(object({
    secret_id = string
    version   = string
  }))
}

variable "invokers" {
  description = "Who may invoke the function (roles/run.invoker), e.g. allUsers or serviceAccount:..."
  type        = list(string)

  validation {
    condition     = length(var.invokers) > 0
    error_message = "Name at least one invoker: a function nobody may call is a mistake."
  }
}

variable "project_roles" {
  description = "Project roles of the runtime service account."
  type        = list(string)
  default     = []
}

variable "labels" {
  description = "Labels of the function."
  type        = map(string)
}
