-- Analytics (shared/store/analytics.py): what a turn's answer said beyond its text.
-- An answered turn that cites nothing said the documents do not hold the answer:
-- nothing relevant was retrieved, or the answerer found nothing in the passages to
-- cite. Turns stored before this column get the same rule from what they kept.
ALTER TABLE chat_turns ADD COLUMN not_in_documents boolean NOT NULL DEFAULT false;
UPDATE chat_turns SET not_in_documents = true
    WHERE status = 'answered' AND citations = '[]'::jsonb;

-- A workspace's negative feedback, newest first (the admins' feedback listing).
CREATE INDEX turn_feedback_negative ON turn_feedback (updated_at DESC, turn_id, principal)
    WHERE rating = 'down';
