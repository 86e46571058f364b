-- Corpus statistics for the full-text arm's BM25 (shared/store/search.py), kept per
-- knowledge base so a question reads each of its words' document frequency with one
-- index lookup instead of counting every chunk that contains the word.
--
-- What is counted: the chunks of the active version of each document that is not
-- archived, exactly what a search may read. The counts change only when a document's
-- active version or archived state changes, so one trigger on documents maintains them
-- in the same transaction as that change: the index step's activation, an approval,
-- archiving, removal. Delivering a pipeline message twice changes nothing (the second
-- activation sets the pointer it already holds: no change, no count). A version's own
-- word counts are computed once, from its chunks, when it first becomes active, and
-- kept beside it, so taking it out of the counts later never needs its chunks (removal
-- deletes them before it clears the pointer).

-- A version's chunks containing each word (stemmed lexeme), counted once.
CREATE TABLE version_terms (
    version_id uuid NOT NULL REFERENCES document_versions (id) ON DELETE CASCADE,
    lexeme     text NOT NULL,
    df         integer NOT NULL,
    PRIMARY KEY (version_id, lexeme)
);

-- A knowledge base's readable chunks containing each word. No foreign key: a knowledge
-- base's removal deletes its rows by trigger after its documents (whose removal
-- updates them) are gone.
CREATE TABLE kb_terms (
    kb_id  uuid NOT NULL,
    lexeme text NOT NULL,
    df     bigint NOT NULL,
    PRIMARY KEY (kb_id, lexeme)
);

-- A knowledge base's readable chunks, and their token total over the chunks of
-- versions that record one (a version without a total is left out of the mean length
-- rather than counted as empty).
CREATE TABLE kb_text_stats (
    kb_id          uuid PRIMARY KEY,
    chunks         bigint NOT NULL DEFAULT 0,
    counted_chunks bigint NOT NULL DEFAULT 0,
    tokens         bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION count_version_terms(version uuid) RETURNS void LANGUAGE sql AS $$
    INSERT INTO version_terms (version_id, lexeme, df)
    SELECT version, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) AS u
    WHERE c.version_id = version GROUP BY u.lexeme
    ON CONFLICT DO NOTHING
$$;

-- Moves a knowledge base's counts from one readable version to another (either NULL).
CREATE FUNCTION shift_text_statistics(kb uuid, old_version uuid, new_version uuid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF old_version IS NOT DISTINCT FROM new_version THEN
        RETURN;
    END IF;
    IF new_version IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM version_terms WHERE version_id = new_version) THEN
        PERFORM count_version_terms(new_version);
    END IF;
    -- In lexeme order, so concurrent activations in one knowledge base lock the rows
    -- they share in the same order (no deadlock).
    INSERT INTO kb_terms AS t (kb_id, lexeme, df)
    SELECT kb, x.lexeme, sum(x.df) FROM (
        SELECT lexeme, df FROM version_terms WHERE version_id = new_version
        UNION ALL
        SELECT lexeme, -df FROM version_terms WHERE version_id = old_version
    ) x GROUP BY x.lexeme HAVING sum(x.df) <> 0 ORDER BY x.lexeme
    ON CONFLICT (kb_id, lexeme) DO UPDATE SET df = t.df + excluded.df;
    INSERT INTO kb_text_stats AS s (kb_id, chunks, counted_chunks, tokens)
    SELECT kb,
        coalesce(sum(sign * chunk_count), 0),
        coalesce(sum(sign * chunk_count) FILTER (WHERE token_total IS NOT NULL), 0),
        coalesce(sum(sign * token_total), 0)
    FROM (
        SELECT 1 AS sign, chunk_count, token_total FROM document_versions WHERE id = new_version
        UNION ALL
        SELECT -1, chunk_count, token_total FROM document_versions WHERE id = old_version
    ) v
    ON CONFLICT (kb_id) DO UPDATE SET chunks = s.chunks + excluded.chunks,
        counted_chunks = s.counted_chunks + excluded.counted_chunks,
        tokens = s.tokens + excluded.tokens;
END
$$;

CREATE FUNCTION documents_text_statistics() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_version uuid;
    new_version uuid;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.archived_at IS NULL THEN
        old_version := OLD.active_version_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.archived_at IS NULL THEN
        new_version := NEW.active_version_id;
    END IF;
    PERFORM shift_text_statistics(
        CASE WHEN TG_OP = 'DELETE' THEN OLD.kb_id ELSE NEW.kb_id END, old_version, new_version);
    RETURN NULL;
END
$$;

CREATE TRIGGER documents_text_statistics_insert AFTER INSERT ON documents
    FOR EACH ROW WHEN (NEW.active_version_id IS NOT NULL)
    EXECUTE FUNCTION documents_text_statistics();
CREATE TRIGGER documents_text_statistics_update
    AFTER UPDATE OF active_version_id, archived_at ON documents
    FOR EACH ROW WHEN (OLD.active_version_id IS DISTINCT FROM NEW.active_version_id
        OR (OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
    EXECUTE FUNCTION documents_text_statistics();
CREATE TRIGGER documents_text_statistics_delete AFTER DELETE ON documents
    FOR EACH ROW WHEN (OLD.active_version_id IS NOT NULL)
    EXECUTE FUNCTION documents_text_statistics();

CREATE FUNCTION knowledge_bases_text_statistics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM kb_terms WHERE kb_id = OLD.id;
    DELETE FROM kb_text_stats WHERE kb_id = OLD.id;
    RETURN NULL;
END
$$;

-- Named to sort after the foreign keys' own triggers ("RI_..."), so it runs after the
-- cascade removed the knowledge base's documents.
CREATE TRIGGER text_statistics_cleanup AFTER DELETE ON knowledge_bases
    FOR EACH ROW EXECUTE FUNCTION knowledge_bases_text_statistics();

-- The counts of what is readable now.
SELECT shift_text_statistics(d.kb_id, NULL, d.active_version_id)
FROM documents d WHERE d.active_version_id IS NOT NULL AND d.archived_at IS NULL;
