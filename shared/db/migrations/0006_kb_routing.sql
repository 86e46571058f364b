-- Whether questions that name something are routed to the documents about it
-- (shared/retrieval/search.py, route_documents). 'names' suits collections of
-- per-entity documents (a company's filings, a customer's contracts), where a name a
-- question mentions is what its documents are about; 'off' suits topical collections
-- (papers, manuals), where a capitalised term is a topic and a hard filter on it
-- would drop relevant documents that do not spell it out.
ALTER TABLE knowledge_bases ADD COLUMN routing text NOT NULL DEFAULT 'names'
    CHECK (routing IN ('names', 'off'));
