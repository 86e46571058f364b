"""Retrieval shared by every answering path: hybrid search inside the caller's scope."""

from shared.retrieval.search import Retrieval, RetrievalRequest, retrieve

__all__ = ["Retrieval", "RetrievalRequest", "retrieve"]
