"""Every SQL statement of the product, one module per aggregate, returning typed records.

Callers above (``shared.pipeline``, ``shared.retrieval``, ``shared.answering``,
``shared.api``) never write SQL; rows are mapped to dataclasses by column name
(:meth:`shared.db.Session.records`). Reads of chunks and documents for questions go
through the one scope builder in :mod:`shared.store.scope`.
"""
