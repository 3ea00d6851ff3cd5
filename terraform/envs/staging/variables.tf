variable "project_id" {
  description = "The Google Cloud project of staging (its own project: one project per environment)."
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
  description = "The web app's page the Google connection returns to (CSCX_WEB_APP_URL)."
  type        = string
}

variable "cors_origins" {
  description = "The web app's origins (CSCX_CORS_ORIGINS)."
  type        = list(string)
}

variable "auth_authorized_domains" {
  description = "Domains Firebase Auth may redirect to: the web app's and <project>.firebaseapp.com."
  type        = list(string)
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
