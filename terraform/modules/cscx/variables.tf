variable "environment" {
  description = "dev, staging or prod (a label on everything)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment is dev, staging or prod."
  }
}

variable "project_id" {
  description = "The Google Cloud (and Firebase) project of this environment."
  type        = string

  validation {
    condition     = !startswith(var.project_id, "demo-")
    error_message = "demo-* project ids are the local emulators' and cannot be deployed to."
  }
}

variable "region" {
  description = "Where the functions, the queue and the buckets are."
  type        = string
}

variable "firestore_location" {
  description = "The Firestore database's location (a region such as us-central1 or a multi-region such as nam5)."
  type        = string
}

variable "source_root" {
  description = "The repository root (the functions' source, firestore.rules, firestore.indexes.json)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every name (functions, service accounts, queue, buckets)."
  type        = string
  default     = "cscx"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}$", var.name_prefix))
    error_message = "name_prefix is 2 to 11 lowercase letters, digits or hyphens (service account ids are short)."
  }
}

variable "labels" {
  description = "Extra labels on everything labelable (app, environment and managed-by are added)."
  type        = map(string)
  default     = {}
}

variable "web_app_url" {
  description = "The console's settings page, where the Google connection returns (CSCX_WEB_APP_URL); empty: the Hosting site's."
  type        = string
  default     = ""

  validation {
    condition     = var.web_app_url == "" || startswith(var.web_app_url, "https://")
    error_message = "web_app_url is an https:// URL."
  }
}

variable "cors_origins" {
  description = "Browser origins allowed to call the API besides the Hosting site's (a custom domain's): CSCX_CORS_ORIGINS."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.cors_origins, "*")
    error_message = "cors_origins lists the console's origins (never *)."
  }
}

variable "hosting_site_id" {
  description = "The Firebase Hosting site of the console; empty: the project's default site (its id is the project id)."
  type        = string
  default     = ""
}

variable "google_oauth_client_id" {
  description = "The OAuth client of the Google connection (its secret is in Secret Manager)."
  type        = string
}

variable "gemini_location" {
  description = "The Vertex AI region of Gemini (CSCX_GEMINI_LOCATION)."
  type        = string
  default     = "us-central1"
}

variable "log_level" {
  description = "CSCX_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level is DEBUG, INFO, WARNING or ERROR."
  }
}

variable "setting_overrides" {
  description = "Tunable settings (local.tunable_settings in main.tf) for every function, e.g. { CSCX_DAILY_EMAIL_QUOTA = \"200\" }."
  type        = map(string)
  default     = {}
}

variable "secret_ids" {
  description = "The Secret Manager secret of each secret setting (created with gcloud, terraform/README.md)."
  type        = map(string)
  default = {
    ANTHROPIC_API_KEY          = "cscx-anthropic-api-key"
    GOOGLE_OAUTH_CLIENT_SECRET = "cscx-google-oauth-client-secret"
    CSCX_TOKEN_ENCRYPTION_KEY  = "cscx-token-encryption-key"
    CSCX_CURSOR_KEY            = "cscx-cursor-key"
  }

  validation {
    condition = sort(keys(var.secret_ids)) == sort([
      "ANTHROPIC_API_KEY",
      "CSCX_CURSOR_KEY",
      "CSCX_TOKEN_ENCRYPTION_KEY",
      "GOOGLE_OAUTH_CLIENT_SECRET",
    ])
    error_message = "secret_ids names the secret of each of ANTHROPIC_API_KEY, CSCX_CURSOR_KEY, CSCX_TOKEN_ENCRYPTION_KEY and GOOGLE_OAUTH_CLIENT_SECRET."
  }
}

variable "secret_version" {
  description = "The version of every secret the functions read (new instances read a new latest)."
  type        = string
  default     = "latest"
}

variable "min_instances" {
  description = "Instances kept warm, by entry point (others: the defaults of functions.tf)."
  type        = map(number)
  default     = {}
}

variable "max_instances" {
  description = "The most instances, by entry point (others: the defaults of functions.tf)."
  type        = map(number)
  default     = {}
}

variable "worker_max_attempts" {
  description = "The attempt on which the worker fails an action that keeps failing transiently (CSCX_TASKS_MAX_ATTEMPTS)."
  type        = number
  default     = 10
}

variable "queue_max_attempts" {
  description = "Attempts of a task before the queue drops it: more than worker_max_attempts."
  type        = number
  default     = 20
}

variable "queue_max_dispatches_per_second" {
  description = "The queue's dispatch rate limit."
  type        = number
  default     = 20
}

variable "queue_max_concurrent_dispatches" {
  description = "Tasks the queue delivers at once."
  type        = number
  default     = 50
}

variable "ttl_fields" {
  description = "Firestore TTL policies: collection => timestamp field."
  type        = map(string)
  default = {
    oauth_states     = "expires_at" # the OAuth connection's single-use state, 10 minutes
    idempotency_keys = "expires_at" # kept answers of Idempotency-Key, 24 hours
    part_log         = "expires_at" # a chat turn's parts for resumed streams, 1 hour
  }
}

variable "contracts_bucket" {
  description = "The bucket of contract files (CSCX_CONTRACTS_BUCKET); empty: <project>-<prefix>-contracts."
  type        = string
  default     = ""
}

variable "deleted_contract_retention_days" {
  description = "How long a deleted or replaced contract file can still be restored."
  type        = number
  default     = 30
}

variable "deletion_protection" {
  description = "Keep the data from being deleted: the Firestore database and the contract files (off, the environment can be destroyed)."
  type        = bool
  default     = true
}

variable "auth_email_password" {
  description = "Enable Firebase Auth's e-mail and password sign-in."
  type        = bool
  default     = true
}

variable "auth_authorized_domains" {
  description = "Domains Firebase Auth may redirect to besides the Hosting site's and <project>.firebaseapp.com (a custom domain)."
  type        = list(string)
  default     = []
}

variable "alert_email" {
  description = "Where the monitoring's alerts are e-mailed; empty: none (incidents still open in Cloud Monitoring)."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+$", var.alert_email))
    error_message = "alert_email is one e-mail address, or empty."
  }
}
