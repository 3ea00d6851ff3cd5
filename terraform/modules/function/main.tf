# One Cloud Function (2nd gen, HTTP): its source archive, its runtime service account, the
# secrets it may read and who may invoke it. Everything else a function may touch is granted by
# the caller (modules/cscx), which knows what each function does.

terraform {
  required_version = ">= 1.9"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4, < 3.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.12, < 1.0"
    }
  }
}

# The function's own archive: its entry point's file as main.py at the root (where the Python
# runtime looks for it), the shared package and the runtime lock as requirements.txt.
data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.root}/.terraform/build/${var.name}.zip"

  dynamic "source" {
    for_each = var.source_files
    content {
      filename = source.key
      content  = file("${var.source_root}/${source.value}")
    }
  }
}

# Named by its content, so a change of any file deploys a new build and an unchanged one none.
resource "google_storage_bucket_object" "source" {
  bucket = var.source_bucket
  name   = "${var.name}/${data.archive_file.source.output_md5}.zip"
  source = data.archive_file.source.output_path
}

resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = var.name
  display_name = "Runtime of the ${var.entry_point} function"
}

resource "google_project_iam_member" "runtime" {
  for_each = toset(var.project_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.runtime.email}"
}

# Each secret this function reads, and no other, is readable by its service account.
resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.runtime.email}"
}

# Deploying the function checks that its account may read its secrets, and its first instances
# use its roles at once; a grant takes a while to reach every IAM check, so the function waits a
# minute after its grants change.
resource "time_sleep" "runtime_permissions" {
  create_duration = "60s"

  triggers = merge(
    { for name, grant in google_secret_manager_secret_iam_member.runtime : "secret ${name}" => grant.id },
    { for role, grant in google_project_iam_member.runtime : role => grant.id },
  )
}

resource "google_cloudfunctions2_function" "this" {
  # checkov:skip=CKV_GCP_124:Ingress stays open on purpose. The user-facing functions are called by browsers on the internet and authenticate every request with a Firebase ID token (DESIGN 2); the worker is called by Cloud Tasks, which internal-only ingress does not admit, and only the tasks service account may invoke it (IAM, plus its own OIDC check).
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = var.description
  labels      = var.labels

  build_config {
    runtime         = var.runtime
    entry_point     = var.entry_point
    service_account = var.build_service_account
    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.runtime.email
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = var.timeout_seconds
    max_instance_request_concurrency = var.concurrency
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    environment_variables            = var.environment_variables

    dynamic "secret_environment_variables" {
      for_each = var.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret_id
        version    = secret_environment_variables.value.version
      }
    }
  }

  # A secret must be readable (and seen to be) before the deploy checks it.
  depends_on = [time_sleep.runtime_permissions]

  lifecycle {
    precondition {
      condition     = var.concurrency == 1 || tonumber(var.cpu) >= 1
      error_message = "${var.name}: more than one request per instance needs at least one CPU."
    }
    precondition {
      condition     = length(setintersection(keys(var.environment_variables), keys(var.secrets))) == 0
      error_message = "${var.name}: a secret is also a plain environment variable."
    }
  }
}

# Authoritative for the role: whoever is not listed here (by Terraform) cannot invoke it.
resource "google_cloud_run_v2_service_iam_binding" "invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.service_config[0].service
  role     = "roles/run.invoker"
  members  = var.invokers
}
