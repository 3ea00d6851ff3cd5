# The prod environment: everything is in modules/cscx. What differs here:
# warm instances (a chat's first token without a cold start) and room to grow.

module "cscx" {
  source = "../../modules/cscx"

  environment             = "prod"
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

  deletion_protection = true
  min_instances = {
    crud           = 1
    chat_stream    = 1
    approve_action = 1
  }
  max_instances = {
    crud        = 50
    chat_stream = 50
  }
}
