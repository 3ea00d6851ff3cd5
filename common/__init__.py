"""CSCX's shared package: everything the Cloud Functions have in common."""
