# The staging environment: everything is in modules/cscx. What differs here:
# production's shape at a smaller scale.

module "cscx" {
  source = "../../modules/cscx"

  environment             = "staging"
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
  max_instances = {
    chat_stream = 10
  }
}
