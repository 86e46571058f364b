-- Vector writes: every per-dimension HNSW index on chunks is rebuilt over
-- embedding::halfvec(N) (16-bit floats) instead of embedding::vector(N); the column keeps
-- full precision, and exact search and reported scores still use it. Inserting into the
-- graph is nearly all a vector write costs; with half the bytes per vector it costs less
-- CPU per chunk and the index is about half the size, at the same recall@10 (see
-- shared/db/vector_index.py and docs/bench/vector_writes.md). Queries repeat the new
-- expression (shared.db.vector_index.distance_sql). Same graph parameters as before.
--
-- Locks: building takes a SHARE lock on chunks (embed tasks wait and retry; reads go on);
-- the old indexes are dropped only after every new one is built, so the ACCESS EXCLUSIVE
-- lock of DROP INDEX is held just until this transaction commits.
-- A graph that fits in maintenance_work_mem builds in memory (about 20 s per 100k 384-d
-- chunks on 2 cores); one that does not is built by slower on-disk inserts.
SET LOCAL maintenance_work_mem = '1GB';

DO $$
DECLARE
    old_name text;
    dimension integer;
BEGIN
    FOR old_name, dimension IN
        SELECT c.relname, substring(c.relname FROM '[0-9]+$')::integer
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam
        WHERE i.indrelid = 'chunks'::regclass AND a.amname = 'hnsw'
          AND c.relname ~ '^chunks_embedding_hnsw_[0-9]+$'
          AND pg_get_indexdef(c.oid) NOT LIKE '%halfvec_cosine_ops%'
    LOOP
        EXECUTE format(
            'CREATE INDEX %I ON chunks USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops)'
            ' WITH (m = 16, ef_construction = 64) WHERE embedding_dim = %s',
            old_name || '_half', dimension, dimension);
    END LOOP;
    FOR old_name IN
        SELECT c.relname FROM pg_class c
        WHERE c.relkind = 'i' AND c.relname ~ '^chunks_embedding_hnsw_[0-9]+_half$'
    LOOP
        EXECUTE format('DROP INDEX %I', substring(old_name FROM '^(.*)_half$'));
        EXECUTE format('ALTER INDEX %I RENAME TO %I',
            old_name, substring(old_name FROM '^(.*)_half$'));
    END LOOP;
END
$$;
