# What the functions stand on: the APIs, Firebase (Auth, Firestore with its rules, indexes
# and TTL policies), the buckets, the Cloud Tasks queue of the worker and the service accounts
# that are not a function's own.

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
    time = {
      source  = "hashicorp/time"
      version = ">= 0.12, < 1.0"
    }
  }
}

locals {
  apis = toset([
    "aiplatform.googleapis.com",       # Gemini on Vertex AI
    "artifactregistry.googleapis.com", # the functions' images
    "calendar-json.googleapis.com",    # approved meetings, through the OAuth client of this project
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com", # the worker's sweep every 5 minutes
    "cloudtasks.googleapis.com",
    "firebase.googleapis.com",
    "firebasehosting.googleapis.com", # the console (web/)
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "gmail.googleapis.com", # approved e-mails, through the OAuth client of this project
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",  # OIDC tokens of the tasks service account
    "identitytoolkit.googleapis.com", # Firebase Auth (Identity Platform)
    "logging.googleapis.com",         # the functions' logs, and the log-based metrics of monitoring
    "monitoring.googleapis.com",      # alerts and the dashboard
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "securetoken.googleapis.com", # Firebase ID tokens
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ])
  # Where Cloud Functions (2nd gen) keeps the sources it builds (the build reads them there).
  function_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"

  indexes = jsondecode(file(var.indexes_file))
  # One Firestore field per field override of the indexes file, and per TTL policy.
  field_overrides = {
    for field in try(local.indexes.fieldOverrides, []) : "${field.collectionGroup}/${field.fieldPath}" => field
  }
  fields = {
    for key in setunion(keys(local.field_overrides), [for collection, field in var.ttl_fields : "${collection}/${field}"]) :
    key => {
      collection = split("/", key)[0]
      field      = split("/", key)[1]
      indexes    = try(local.field_overrides[key].indexes, null)
      ttl        = contains([for collection, field in var.ttl_fields : "${collection}/${field}"], key) || try(local.field_overrides[key].ttl, false)
    }
  }
}

# The project itself (created with gcloud, terraform/README.md step 1), read at plan time.
data "google_project" "this" {
  project_id = var.project_id

  lifecycle {
    # Firebase's Terraform guide: the label that shows the project in the Firebase console.
    postcondition {
      condition     = lookup(self.effective_labels, "firebase", "") == "enabled"
      error_message = "The project ${var.project_id} lacks the label firebase=enabled that shows it in the Firebase console: gcloud projects update ${var.project_id} --update-labels=firebase=enabled"
    }
  }
}

resource "google_project_service" "api" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# Firebase: the project, its Auth (Identity Platform) and the rules of client access.

resource "google_firebase_project" "this" {
  provider = google-beta
  project  = var.project_id

  depends_on = [google_project_service.api]
}

resource "google_identity_platform_config" "auth" {
  project                    = var.project_id
  autodelete_anonymous_users = true
  authorized_domains         = var.auth_authorized_domains

  sign_in {
    allow_duplicate_emails = false
    email {
      enabled           = var.auth_email_password
      password_required = true
    }
  }

  depends_on = [google_firebase_project.this]
}

# The console (web/): a Firebase web app (its API key and auth domain are the console's Firebase
# configuration) and the Hosting site that serves it; make deploy publishes web/'s build there.

resource "google_firebase_web_app" "console" {
  provider        = google-beta
  project         = var.project_id
  display_name    = "CSCX console"
  deletion_policy = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_firebase_project.this]
}

data "google_firebase_web_app_config" "console" {
  provider   = google-beta
  project    = var.project_id
  web_app_id = google_firebase_web_app.console.app_id
}

# The project's default site (its id is the project id) unless another is named: Terraform adopts
# the default site Firebase made, and never deletes it.
resource "google_firebase_hosting_site" "console" {
  provider = google-beta
  project  = var.project_id
  site_id  = var.hosting_site_id
  app_id   = google_firebase_web_app.console.app_id
}

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.api]
}

resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file(var.rules_file)
    }
  }

  depends_on = [google_firestore_database.this]

  # A changed file is a new ruleset; the release moves to it before the old one goes.
  lifecycle {
    create_before_destroy = true
  }
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}

resource "google_firestore_index" "this" {
  for_each = { for index in local.indexes.indexes : join("|", concat([index.collectionGroup, index.queryScope], [for field in index.fields : "${field.fieldPath}:${try(field.order, field.arrayConfig)}"])) => index }

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.collectionGroup
  query_scope = each.value.queryScope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = try(fields.value.order, null)
      array_config = try(fields.value.arrayConfig, null)
    }
  }
}

resource "google_firestore_field" "this" {
  for_each = local.fields

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.collection
  field      = each.value.field

  dynamic "index_config" {
    for_each = each.value.indexes == null ? [] : [each.value.indexes]
    content {
      dynamic "indexes" {
        for_each = index_config.value
        content {
          query_scope  = indexes.value.queryScope
          order        = try(indexes.value.order, null)
          array_config = try(indexes.value.arrayConfig, null)
        }
      }
    }
  }

  # Documents are deleted (within about a day) once this timestamp has passed.
  dynamic "ttl_config" {
    for_each = each.value.ttl ? [true] : []
    content {}
  }
}

# Cloud Storage: the contract files, and the functions' source archives.

resource "google_storage_bucket" "contracts" {
  # checkov:skip=CKV_GCP_62:Reads and writes of contract files are recorded by the Data Access audit logs of Cloud Storage (google_project_iam_audit_config.storage below), which Google recommends over usage logs.
  project                     = var.project_id
  name                        = var.contracts_bucket
  location                    = var.region
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Without deletion protection (dev), destroying the environment deletes the files, old versions included.
  force_destroy = !var.deletion_protection

  # A deleted or replaced contract file can be restored for a while, then it is gone for good.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.deleted_contract_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62:Holds only the functions' source archives that Terraform uploads (nothing secret, nothing a user sends); its access is in the same Data Access audit logs as every bucket's.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-sources"
  location                    = var.region
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

# Who read, wrote or deleted which object, in every bucket of the project (contract files among them).
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

# Deleting a contract deletes its file: the one storage permission crud needs.
resource "google_project_iam_custom_role" "contract_file_deleter" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_contract_file_deleter"
  title       = "Contract file deleter"
  description = "Deletes contract files (crud's contract delete)."
  permissions = ["storage.objects.delete"]
}

# Cloud Tasks: the worker's queue, for approved actions and the expiry of proposals.

resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-tasks"
  display_name = "Cloud Tasks deliveries to the worker (its OIDC token)"

  depends_on = [google_project_service.api]
}

resource "google_cloud_tasks_queue" "actions" {
  project  = var.project_id
  location = var.region
  name     = "${var.name_prefix}-actions"

  rate_limits {
    max_dispatches_per_second = var.queue_max_dispatches_per_second
    max_concurrent_dispatches = var.queue_max_concurrent_dispatches
  }

  # The worker fails an action on its own last attempt (CSCX_TASKS_MAX_ATTEMPTS); the queue
  # allows more, so attempts lost while the worker could not be reached do not use those up.
  retry_config {
    max_attempts  = var.queue_max_attempts
    min_backoff   = "10s"
    max_backoff   = "600s"
    max_doublings = 5
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  depends_on = [google_project_service.api]
}

# Cloud Build builds the functions as its own service account, not the default compute one.

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "Cloud Build of the functions"

  depends_on = [google_project_service.api]
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter", "roles/artifactregistry.writer"])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions (2nd gen) copies each archive into its own bucket of the region,
# gcf-v2-sources-<project number>-<region>, and the build works from there: Cloud Run's page on
# build service accounts asks for Storage Object Admin, which a condition keeps to that bucket.
resource "google_project_iam_member" "build_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources"
    description = "Only the bucket where Cloud Functions keeps the sources it builds, in this region."
    expression  = "resource.name == \"projects/_/buckets/${local.function_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.function_sources_bucket}/objects/\")"
  }
}

# A grant takes a while to reach every IAM check: a build that starts at once can be refused. So
# the functions wait a minute after the build's grants change (as the provider's "Cloudfunctions2
# Basic Builder" example does).
resource "time_sleep" "build_permissions" {
  create_duration = "60s"

  triggers = merge(
    { for role, grant in google_project_iam_member.build : role => grant.id },
    {
      function_sources = google_project_iam_member.build_function_sources.id
      archives         = google_storage_bucket_iam_member.build_reads_sources.id
    },
  )
}

# The secrets are created (with their values) by gcloud, never by Terraform, so no secret value
# reaches the state; reading them here fails the plan, with the secret's name, when one is missing.
# No depends_on: it would put off the reading to the apply (the Secret Manager API is enabled
# before the first plan, terraform/README.md step 2).
data "google_secret_manager_secret" "this" {
  for_each = var.secret_ids

  project   = var.project_id
  secret_id = each.value
}
