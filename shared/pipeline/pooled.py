"""Embed requests filled across versions, for providers that bill and limit per request.

A thousand small documents chunked at once would make a thousand small requests, one
per embed task, and a per-minute request limit (or a request's fixed cost) would
decide the pace. Instead, an embed task with chunks of its own to embed waits for its
instance's turn (the embedder's pacer: room for what waits in the pool, up to a full
request), then, in one transaction:

1. locks its own unembedded chunks, waiting for any another request holds;
2. fills the rest of the request (``request_tokens`` of the provider's tokens, at most
   2,048 inputs) with the oldest unembedded chunks of any version that embeds with the
   same model and dimension, skipping rows other transactions hold;
3. embeds them all and writes every vector, then commits.

Nothing is lost or done twice: a chunk is embedded by whichever transaction locked it,
its own task either waits for that one (and finds the vector) or embeds it itself, and
the embed step checks every version a request touched for completion. A crash rolls
the transaction back and the locks go with it. Each request extends the lease of every
version still waiting in the backlog, so the sweeper re-drives them only once requests
stop going out.
"""

from __future__ import annotations

import math

from shared.embeddings.base import RateLimitedEmbedder
from shared.models import EmbedTask
from shared.runtime import Runtime
from shared.store import chunks as chunk_store
from shared.store import versions as version_store
from shared.store.knowledge_bases import KnowledgeBase

MAX_INPUTS = 2048
"""Inputs one embeddings request may carry (OpenAI's limit)."""

_FIRST_GUESS_TOKENS = 256
_MAX_PAGE = 512


def embed_pooled(
    runtime: Runtime, embedder: RateLimitedEmbedder, kb: KnowledgeBase, task: EmbedTask
) -> set[str]:
    """Embed the task's chunks in requests filled from every version waiting.

    Args:
        runtime: The instance's runtime.
        embedder: The knowledge base's embedder.
        kb: The knowledge base of the task's version.
        task: The embed task.

    Returns:
        The versions whose chunks got vectors (the task's own included when it had any).
    """
    database = runtime.database
    budget = embedder.request_tokens
    # Wait for room for what waits now, up to a full request: a lone document goes at
    # once, a backlog in full requests.
    waiting = chunk_store.pool_tokens(
        database, model=kb.embedding_model, dim=kb.embedding_dim, cap=budget
    )
    with embedder.reserve(min(budget, max(1, waiting))), database.transaction() as session:
        own = chunk_store.lock_unembedded(
            session, task.version_id, task.first_ordinal, task.last_ordinal
        )
        if not own:
            return set()
        texts = [chunk.text for chunk in own]
        ids = [chunk.id for chunk in own]
        touched = {task.version_id}
        room = budget - sum(embedder.count_tokens(texts))
        held = list(ids)
        average = _FIRST_GUESS_TOKENS
        while room > 0 and len(ids) < MAX_INPUTS:
            asked = max(8, min(_MAX_PAGE, MAX_INPUTS - len(ids), math.ceil(room / average)))
            page = chunk_store.claim_pool(
                session, model=kb.embedding_model, dim=kb.embedding_dim, skip=held, limit=asked
            )
            held.extend(chunk.id for chunk in page)
            counts = embedder.count_tokens([chunk.text for chunk in page])
            for chunk, count in zip(page, counts, strict=True):
                if count <= room and len(ids) < MAX_INPUTS:
                    texts.append(chunk.text)
                    ids.append(chunk.id)
                    touched.add(chunk.version_id)
                    room -= count
            if len(page) < asked:
                break  # the pool is empty (or held by others)
            average = max(1, math.ceil(sum(counts) / len(counts)))
            if room < average:
                break  # full: nothing of typical size fits any more
        vectors = embedder.embed(texts)
        chunk_store.write_vectors(session, ids, vectors, kb.embedding_dim)
    # The backlog moved: neither the versions filled in here nor those still waiting
    # behind them are stalled, as the sweeper sees it.
    version_store.extend_pool_leases(
        database, kb.embedding_model, kb.embedding_dim, runtime.settings.lease_s
    )
    return touched
