"""Issue 2's benchmark: CRUD latency against the raw Firestore client, reads per list page as
the collection grows, and cold import time of each function. Run it with `make bench`.
"""
