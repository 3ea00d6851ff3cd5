# The deployed functions: one entry per entry point of functions/manifest.json (the plan
# fails when they differ). Each has its own runtime service account with the project roles
# listed here and read access to the secrets listed here, and nothing else; the grants on the
# queue, the tasks service account and the contracts bucket are in iam.tf.
#
# Every function answers to the public internet except the worker: the user-facing ones
# authenticate each request themselves with a Firebase ID token (DESIGN §2), so IAM lets
# everyone reach them; the worker is invoked by the tasks service account only (DESIGN §6).

locals {
  functions = {
    crud = {
      description     = "Customers, contracts, tasks, sessions, profile and the Google connection."
      memory          = "512Mi"
      cpu             = "1"
      timeout_seconds = 60
      concurrency     = 20
      min_instances   = 0
      max_instances   = 20
      invokers        = ["allUsers"]
      secrets = [
        "CSCX_CURSOR_KEY",
        "GOOGLE_OAUTH_CLIENT_SECRET",
        "CSCX_TOKEN_ENCRYPTION_KEY",
      ]
      project_roles = [
        "roles/datastore.user",
        "roles/firebaseauth.viewer", # revocation checks of irreversible operations
      ]
    }
    chat_stream = {
      description     = "The agent's streamed chat."
      memory          = "1Gi"
      cpu             = "1"
      timeout_seconds = 3600 # a stream lasts as long as the model talks
      concurrency     = 80   # one stream per functions-framework thread: functions/manifest.json threads
      min_instances   = 0
      max_instances   = 20
      invokers        = ["allUsers"]
      secrets = [
        "ANTHROPIC_API_KEY",
        "CSCX_CURSOR_KEY",
        "GOOGLE_OAUTH_CLIENT_SECRET",
        "CSCX_TOKEN_ENCRYPTION_KEY",
      ]
      project_roles = [
        "roles/datastore.user",
        "roles/aiplatform.user", # Gemini on Vertex AI
      ]
    }
    approve_action = {
      description     = "The CSM's decisions on proposed actions."
      memory          = "512Mi"
      cpu             = "1"
      timeout_seconds = 60
      concurrency     = 20
      min_instances   = 0
      max_instances   = 10
      invokers        = ["allUsers"]
      # It only decides and enqueues: Google is the worker's business, so neither the OAuth
      # client's secret nor the token key is here.
      secrets = [
        "CSCX_CURSOR_KEY",
      ]
      project_roles = [
        "roles/datastore.user",
        "roles/firebaseauth.viewer", # approving checks revocation
      ]
    }
    contract_parse = {
      description     = "Contract upload, text and term extraction."
      memory          = "1Gi"
      cpu             = "1"
      timeout_seconds = 540 # long contracts are read by the model in runs of pages
      concurrency     = 4   # text extraction is CPU-bound
      min_instances   = 0
      max_instances   = 10
      invokers        = ["allUsers"]
      secrets = [
        "ANTHROPIC_API_KEY",
        "CSCX_CURSOR_KEY",
      ]
      project_roles = [
        "roles/datastore.user",
        "roles/aiplatform.user", # Gemini on Vertex AI
      ]
    }
    execute_action = {
      description     = "The worker: carries out approved actions, expires proposals, sweeps (Cloud Tasks and Scheduler only)."
      memory          = "512Mi"
      cpu             = "1"
      timeout_seconds = 300
      concurrency     = 32 # deliveries at once: I/O-bound on Firestore and Google; functions/manifest.json threads
      min_instances   = 0
      max_instances   = 10
      invokers        = ["serviceAccount:${module.platform.tasks_service_account_email}"]
      secrets = [
        "CSCX_CURSOR_KEY",
        "GOOGLE_OAUTH_CLIENT_SECRET",
        "CSCX_TOKEN_ENCRYPTION_KEY",
      ]
      project_roles = [
        "roles/datastore.user",
      ]
    }
  }
}
