-- The period a version reports on, as its own text states it (shared/periods.py): the
-- period's last day, its length in months and the month the company's fiscal year
-- ends. Retrieval matches the quarters, years and dates a question names against them.
ALTER TABLE document_versions
    ADD COLUMN period_end date,
    ADD COLUMN period_months smallint,
    ADD COLUMN fiscal_year_end_month smallint;

-- 'auto' weighs what a question names (names, periods, titles) as document evidence
-- and narrows only when that evidence is unambiguous (shared/retrieval/evidence.py);
-- it is the one default. 'names' (the earlier default, a hard filter on any name a
-- document profile contains) and 'off' remain as expert overrides; knowledge bases
-- still on the earlier default move to the new one.
ALTER TABLE knowledge_bases DROP CONSTRAINT IF EXISTS knowledge_bases_routing_check;
ALTER TABLE knowledge_bases ALTER COLUMN routing SET DEFAULT 'auto';
UPDATE knowledge_bases SET routing = 'auto' WHERE routing = 'names';
ALTER TABLE knowledge_bases ADD CONSTRAINT knowledge_bases_routing_check
    CHECK (routing IN ('auto', 'names', 'off'));
