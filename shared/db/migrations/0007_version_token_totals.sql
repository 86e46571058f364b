-- The sum of a version's chunk lengths (in the embedding model's tokens, at least 1 per
-- chunk), set when the version is chunked. With chunk_count it gives BM25 its collection
-- statistics (chunks in scope, their mean length) from the active versions instead of
-- a scan of every chunk in scope on every question (shared/retrieval/search.py).
ALTER TABLE document_versions ADD COLUMN token_total bigint;

UPDATE document_versions v SET token_total = s.total
FROM (SELECT version_id, sum(greatest(token_count, 1)) AS total FROM chunks GROUP BY version_id) s
WHERE s.version_id = v.id;
