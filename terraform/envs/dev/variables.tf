variable "project_id" {
  description = "The Google Cloud project of dev (its own project: one project per environment)."
  type        = string
}

variable "region" {
  description = "Where the functions, the queue and the buckets are."
  type        = string
  default     = "us-central1"
}

variable "firestore_location" {
  description = "The Firestore database's location; it cannot be changed once created."
  type        = string
  default     = "nam5"
}

variable "web_app_url" {
  description = "The console's settings page, where the Google connection returns (CSCX_WEB_APP_URL); empty: the Hosting site's."
  type        = string
  default     = ""
}

variable "cors_origins" {
  description = "The console's origins besides its Hosting site's (a custom domain's): CSCX_CORS_ORIGINS."
  type        = list(string)
  default     = []
}

variable "auth_authorized_domains" {
  description = "Domains Firebase Auth may redirect to besides the Hosting site's and <project>.firebaseapp.com."
  type        = list(string)
  default     = []
}

variable "google_oauth_client_id" {
  description = "The OAuth client id of the Google connection (its secret is in Secret Manager)."
  type        = string
}

variable "setting_overrides" {
  description = "Tunable settings, e.g. { CSCX_DAILY_EMAIL_QUOTA = \"200\" } (modules/cscx/main.tf lists them)."
  type        = map(string)
  default     = {}
}

variable "alert_email" {
  description = "Where monitoring alerts are e-mailed (empty: none; incidents still open in Cloud Monitoring)."
  type        = string
  default     = ""
}
