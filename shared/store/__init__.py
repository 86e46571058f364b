"""The product's SQL, one module per aggregate, returning typed records.

Rows are mapped to dataclasses by column name (:meth:`shared.db.Session.records`).
The move is under way: ``knowledge_bases``, ``documents``, ``versions``, ``chunks``
(the pipeline's statements), ``events`` and ``vector_index`` live here; the statements
still outside (answering, retrieval) are listed, file by file, in
``tests/unit/test_architecture.py`` (a ratchet that only lets them shrink).
"""
