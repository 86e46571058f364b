-- One role holds what the functions may do; each function's IAM database user is made a
-- member of it after migrations (shared.db.migrate.grant_app_role, run by Cloud Build
-- with the db_users Terraform output). Cloud SQL IAM users start with no privileges.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ragline_app') THEN
        CREATE ROLE ragline_app NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO ragline_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ragline_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ragline_app;
-- Tables and sequences later migrations create (as the same migrator) are covered too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ragline_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ragline_app;

-- Creating an index needs table ownership, which the functions do not have: the HNSW
-- indexes of the common embedding dimensions are created here instead (partial, so an
-- index costs nothing until a knowledge base of its dimension stores vectors). Others
-- are created when a knowledge base needs them if the caller may, else search on them
-- is exact.
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_768 ON chunks
    USING hnsw ((embedding::vector(768)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 768;
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_1024 ON chunks
    USING hnsw ((embedding::vector(1024)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 1024;
CREATE INDEX IF NOT EXISTS chunks_embedding_hnsw_1536 ON chunks
    USING hnsw ((embedding::vector(1536)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 1536;
