# The dev environment: everything is in modules/cscx. What differs here:
# nothing is kept warm, and the database may be deleted.

module "cscx" {
  source = "../../modules/cscx"

  environment             = "dev"
  project_id              = var.project_id
  region                  = var.region
  firestore_location      = var.firestore_location
  source_root             = "${path.root}/../../.."
  web_app_url             = var.web_app_url
  cors_origins            = var.cors_origins
  auth_authorized_domains = var.auth_authorized_domains
  google_oauth_client_id  = var.google_oauth_client_id
  setting_overrides       = var.setting_overrides
  alert_email             = var.alert_email

  log_level           = "DEBUG"
  deletion_protection = false
  max_instances = {
    crud           = 5
    chat_stream    = 5
    approve_action = 3
    contract_parse = 3
    execute_action = 3
  }
}
