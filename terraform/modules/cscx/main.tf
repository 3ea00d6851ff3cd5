# One CSCX environment: the platform (modules/platform) and the five functions
# (modules/function), with every setting and secret the code reads wired to them; their
# monitoring is in monitoring.tf.

terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 7.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
  }
}

locals {
  labels = merge(var.labels, {
    app         = "cscx"
    environment = var.environment
    managed-by  = "terraform"
  })

  manifest = { for entry in jsondecode(file("${var.source_root}/functions/manifest.json")).functions : entry.entry_point => entry }

  # Function names are their Cloud Run service names too: lowercase, hyphens.
  names = { for key in keys(local.functions) : key => "${var.name_prefix}-${replace(key, "_", "-")}" }
  # A 2nd gen function's URL is known before it exists, so functions can be told each other's
  # (and their own) URLs without a cycle; check "urls" below compares them with the real ones.
  urls = { for key, name in local.names : key => "https://${var.region}-${var.project_id}.cloudfunctions.net/${name}" }

  # The console (web/) on Firebase Hosting: its site serves at <site>.web.app and <site>.firebaseapp.com
  # (both known before apply), plus any custom domain an environment adds. The Google connection
  # sends the browser back to the console's settings page, at the path the local stack uses too.
  hosting_site          = coalesce(var.hosting_site_id, var.project_id)
  console_origins       = ["https://${local.hosting_site}.web.app", "https://${local.hosting_site}.firebaseapp.com"]
  console_url           = local.console_origins[0]
  console_settings_path = "/settings/integrations"
  cors_origins          = distinct(concat(local.console_origins, var.cors_origins))
  auth_authorized_domains = distinct(concat(
    ["${local.hosting_site}.web.app", "${local.hosting_site}.firebaseapp.com", "${var.project_id}.firebaseapp.com"],
    var.auth_authorized_domains,
  ))

  # Every archive: the entry point's file as main.py, the shared package, the runtime lock.
  common_files = [for path in fileset(var.source_root, "common/**") : path if !can(regex("__pycache__|\\.pyc$", path))]

  # The settings every function gets (common/settings.py reads them all at cold start). Values
  # come from this environment's infrastructure and variables; the tunables of var.setting_overrides
  # are added, and any other setting keeps the code's default.
  infrastructure_settings = {
    GOOGLE_CLOUD_PROJECT       = var.project_id
    CSCX_LOG_LEVEL             = var.log_level
    CSCX_CORS_ORIGINS          = join(",", local.cors_origins)
    CSCX_TASKS_QUEUE           = module.platform.tasks_queue
    CSCX_TASKS_SERVICE_ACCOUNT = module.platform.tasks_service_account_email
    CSCX_WORKER_URL            = local.urls.execute_action
    CSCX_TASKS_MAX_ATTEMPTS    = tostring(var.worker_max_attempts)
    CSCX_CONTRACTS_BUCKET      = module.platform.contracts_bucket
    CSCX_GEMINI_LOCATION       = var.gemini_location
    GOOGLE_OAUTH_CLIENT_ID     = var.google_oauth_client_id
    CSCX_OAUTH_REDIRECT_URL    = "${local.urls.crud}/integrations/google/callback"
    CSCX_WEB_APP_URL           = coalesce(var.web_app_url, "${local.console_url}${local.console_settings_path}")
  }
  settings = merge(var.setting_overrides, local.infrastructure_settings)

  # Besides, each function gets THREADS (its concurrency: functions-framework serves as many
  # requests at once as Cloud Run sends) and CSCX_BEHIND_IAM: true when none of its invokers is
  # public (the worker), so that Cloud Run's IAM check verifies every caller's token before the
  # function sees it and the worker may take a token whose signature Cloud Run removed (DESIGN §6).
  public_members = ["allUsers", "allAuthenticatedUsers"]

  # Settings an environment may change through var.setting_overrides; unset, the code's default holds.
  tunable_settings = [
    "CSCX_MAX_BODY_BYTES",
    "CSCX_MAX_UPLOAD_BYTES",
    "CSCX_FIRESTORE_TIMEOUT_SECONDS",
    "CSCX_CLAUDE_MODELS",
    "CSCX_GEMINI_MODELS",
    "CSCX_CHAT_MAX_STEPS",
    "CSCX_HISTORY_TOKEN_BUDGET",
    "CSCX_MAX_OUTPUT_TOKENS",
    "CSCX_DAILY_TOKEN_BUDGET",
    "CSCX_CONTRACT_MODEL_CHARS",
    "CSCX_STREAM_LEASE_SECONDS",
    "CSCX_STREAM_PING_SECONDS",
    "CSCX_STREAM_RESUME_GRACE_SECONDS",
    "CSCX_DAILY_EMAIL_QUOTA",
    "CSCX_DAILY_MEETING_QUOTA",
    "CSCX_ACTION_EXPIRY_SECONDS",
    "CSCX_EXECUTION_LEASE_SECONDS",
    "CSCX_RATE_LIMIT_PER_MINUTE",
    "CSCX_MAX_DOCUMENTS",
    "CSCX_DELETE_BATCH_LIMIT",
    "CSCX_PARSE_MEMORY_MB",
    "CSCX_PARSE_SECONDS",
    "CSCX_SWEEP_LIMIT",
  ]

  # Settings the code reads that are never set deployed, and why.
  unset_settings = {
    GCLOUD_PROJECT          = "an older name of GOOGLE_CLOUD_PROJECT, which is set"
    CSCX_ID_TOKEN_CERTS_URL = "only changeable in demo-* projects (tests serve their own certificates)"
    CSCX_OIDC_CERTS_URL     = "only changeable in demo-* projects (tests serve their own certificates)"
    ANTHROPIC_BASE_URL      = "the local model stand-in; deployed, Anthropic's API"
    CSCX_GEMINI_BASE_URL    = "the local model stand-in; deployed, Vertex AI"
    CSCX_GOOGLE_API_BASE    = "the local Google stand-in; deployed, Gmail's and Calendar's APIs"
    CSCX_GOOGLE_OAUTH_BASE  = "the local Google stand-in; deployed, Google's OAuth endpoints"
    "*_EMULATOR_HOST"       = "emulators are refused outside demo-* projects (they skip token checks)"
    K_SERVICE               = "set by Cloud Run itself (reserved): how the code knows it runs deployed"
  }
}

module "platform" {
  source = "../platform"

  project_id                      = var.project_id
  region                          = var.region
  name_prefix                     = var.name_prefix
  firestore_location              = var.firestore_location
  rules_file                      = "${var.source_root}/firestore.rules"
  indexes_file                    = "${var.source_root}/firestore.indexes.json"
  ttl_fields                      = var.ttl_fields
  contracts_bucket                = coalesce(var.contracts_bucket, "${var.project_id}-${var.name_prefix}-contracts")
  deleted_contract_retention_days = var.deleted_contract_retention_days
  deletion_protection             = var.deletion_protection
  auth_email_password             = var.auth_email_password
  auth_authorized_domains         = local.auth_authorized_domains
  hosting_site_id                 = local.hosting_site
  queue_max_attempts              = var.queue_max_attempts
  queue_max_dispatches_per_second = var.queue_max_dispatches_per_second
  queue_max_concurrent_dispatches = var.queue_max_concurrent_dispatches
  secret_ids                      = var.secret_ids
  labels                          = local.labels
}

module "functions" {
  source   = "../function"
  for_each = local.functions

  project_id  = var.project_id
  region      = var.region
  name        = local.names[each.key]
  entry_point = each.key
  description = each.value.description
  source_root = var.source_root
  source_files = merge(
    { for path in local.common_files : path => path },
    {
      "main.py"          = local.manifest[each.key].source
      "requirements.txt" = "requirements.lock"
    },
  )
  source_bucket         = module.platform.sources_bucket
  build_service_account = module.platform.build_service_account

  memory          = each.value.memory
  cpu             = each.value.cpu
  timeout_seconds = each.value.timeout_seconds
  concurrency     = each.value.concurrency
  min_instances   = lookup(var.min_instances, each.key, each.value.min_instances)
  max_instances   = lookup(var.max_instances, each.key, each.value.max_instances)
  environment_variables = merge(local.settings, {
    THREADS         = tostring(each.value.concurrency)
    CSCX_BEHIND_IAM = tostring(length(setintersection(each.value.invokers, local.public_members)) == 0)
  })
  secrets       = { for name in each.value.secrets : name => { secret_id = module.platform.secret_ids[name], version = var.secret_version } }
  invokers      = each.value.invokers
  project_roles = each.value.project_roles
  labels        = merge(local.labels, { function = each.key })
}

# What `terraform plan` refuses (a failed precondition fails the plan, before anything is created).
resource "terraform_data" "consistency" {
  lifecycle {
    precondition {
      condition     = sort(keys(local.manifest)) == sort(keys(local.functions))
      error_message = "functions/manifest.json and modules/cscx/functions.tf must list the same entry points."
    }
    precondition {
      condition     = alltrue([for key, entry in local.manifest : try(entry.threads, null) == null || try(local.functions[key].concurrency, 0) == try(entry.threads, 0)])
      error_message = "A function's concurrency must equal its threads in functions/manifest.json."
    }
    precondition {
      condition     = var.queue_max_attempts > var.worker_max_attempts
      error_message = "The queue must allow more attempts than the worker uses (queue_max_attempts > worker_max_attempts)."
    }
    precondition {
      condition     = length(setsubtract(keys(var.setting_overrides), local.tunable_settings)) == 0
      error_message = "setting_overrides may only change these settings: ${join(", ", local.tunable_settings)}."
    }
  }
}

check "urls" {
  assert {
    condition     = alltrue([for key, function in module.functions : function.url == local.urls[key]])
    error_message = "A function's URL is not the one its settings were given (CSCX_WORKER_URL, CSCX_OAUTH_REDIRECT_URL)."
  }
}
