"""The local stack: every Ragline function on one origin, with local providers.

Embedded PostgreSQL + pgvector, the GCS emulator driven through the real client, an
in-process Pub/Sub bus and Cloud Tasks queue with push semantics, a bucket notifier
standing in for Eventarc, and a watched drop folder. The functions run unchanged.
"""
