# Grants between the functions and the platform, each to the functions that need it only.

locals {
  # Approving enqueues the execution; proposing (in the chat) enqueues the expiry, and an
  # auto-approved proposal's execution; the worker's sweep enqueues what was approved without a
  # task and re-drives stalled executions. Every task carries an OIDC token of the tasks service
  # account, so these functions act as it (and crud and contract_parse do not).
  task_enqueuers = ["approve_action", "chat_stream", "execute_action"]

  # contract_parse keeps and reads the files; crud deletes them with their contract.
  contract_file_access = {
    contract_parse = "roles/storage.objectUser"
    crud           = module.platform.contract_file_deleter_role
  }
}

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = toset(local.task_enqueuers)

  project  = var.project_id
  location = var.region
  name     = module.platform.tasks_queue_name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${module.functions[each.value].service_account_email}"
}

resource "google_service_account_iam_member" "enqueuer_acts_as_tasks" {
  for_each = toset(local.task_enqueuers)

  service_account_id = module.platform.tasks_service_account_id
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${module.functions[each.value].service_account_email}"
}

resource "google_storage_bucket_iam_member" "contract_files" {
  for_each = local.contract_file_access

  bucket = module.platform.contracts_bucket
  role   = each.value
  member = "serviceAccount:${module.functions[each.key].service_account_email}"
}
