variable "project_id" {
  description = "The Google Cloud (and Firebase) project."
  type        = string
}

variable "region" {
  description = "Where the queue and the buckets are."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the names of the queue, service accounts and buckets."
  type        = string
}

variable "firestore_location" {
  description = "The Firestore database's location (a region or a multi-region such as nam5)."
  type        = string
}

variable "rules_file" {
  description = "The Firestore security rules to release."
  type        = string
}

variable "indexes_file" {
  description = "The Firestore indexes (firestore.indexes.json) to apply."
  type        = string
}

variable "ttl_fields" {
  description = "TTL policies: collection => the timestamp field after which its documents are deleted."
  type        = map(string)
}

variable "contracts_bucket" {
  description = "The bucket of contract files."
  type        = string
}

variable "deleted_contract_retention_days" {
  description = "How long a deleted or replaced contract file can still be restored."
  type        = number
}

variable "deletion_protection" {
  description = "Keep the data from being deleted: the Firestore database (by Terraform or anyone), the contract files (by Terraform)."
  type        = bool
}

variable "auth_email_password" {
  description = "Enable the e-mail and password sign-in of Firebase Auth."
  type        = bool
}

variable "auth_authorized_domains" {
  description = "Domains Firebase Auth may redirect to (the web app's)."
  type        = list(string)
}

variable "queue_max_attempts" {
  description = "Attempts of a task before the queue drops it."
  type        = number
}

variable "queue_max_dispatches_per_second" {
  description = "The queue's dispatch rate limit."
  type        = number
}

variable "queue_max_concurrent_dispatches" {
  description = "Tasks the queue delivers at once."
  type        = number
}

variable "secret_ids" {
  description = "Secret Manager secret ids that must exist, by what they hold."
  type        = map(string)
}

variable "labels" {
  description = "Labels of everything labelable."
  type        = map(string)
}

variable "hosting_site_id" {
  description = "The Firebase Hosting site of the console (the project id: the project's default site)."
  type        = string
}
