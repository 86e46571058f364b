"""The ingestion pipeline: ingest -> parse -> chunk -> embed -> index (and dead letter).

Each step is a typed function called by a thin handler in ``functions/``. Steps are
idempotent by construction: conditional state transitions, keyed upserts and
deterministic names, so delivering any message N times equals delivering it once.
"""
