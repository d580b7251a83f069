-- External ids, duplicates and merges (issue 12 #4, #5).
--
-- lead_external_ids mirrors leads.external_ids ({system: id}) one row per pair, written in the
-- same transaction as the lead (services/lead_matching.py). The primary key is the uniqueness
-- rule itself (one lead per organization, system and id) and the lookup's index: a unique
-- expression index over a jsonb object's variable keys is not possible, and a side table
-- makes "who holds hubspot:123" one index probe.
CREATE TABLE lead_external_ids (
    organization_id uuid NOT NULL,
    system text NOT NULL CHECK (system ~ '^[a-z][a-z0-9_]{0,31}$'),
    external_id text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    lead_id uuid NOT NULL,
    PRIMARY KEY (organization_id, system, external_id),
    FOREIGN KEY (organization_id, lead_id) REFERENCES leads (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_external_ids_lead ON lead_external_ids (organization_id, lead_id);

-- Leads created before this migration may already carry external ids (demo data, COPY).
INSERT INTO lead_external_ids (organization_id, system, external_id, lead_id)
SELECT l.organization_id, e.key, e.value #>> '{}', l.id
FROM leads AS l
CROSS JOIN LATERAL jsonb_each(l.external_ids) AS e
WHERE e.key ~ '^[a-z][a-z0-9_]{0,31}$'
  AND jsonb_typeof(e.value) = 'string'
  AND length(e.value #>> '{}') BETWEEN 1 AND 255
ON CONFLICT DO NOTHING;

-- A merged lead points at the lead it was merged into (same organization); erasing that lead
-- clears the pointer only (PostgreSQL 15's column list), not the organization.
ALTER TABLE leads ADD COLUMN merged_into uuid;
ALTER TABLE leads
    ADD CONSTRAINT leads_merged_into_fkey
    FOREIGN KEY (organization_id, merged_into) REFERENCES leads (organization_id, id)
    ON DELETE SET NULL (merged_into);

-- Likely duplicates: the same normalised email (trimmed, lower case) or phone (its digits) in
-- the organization. Expression indexes, not generated columns: the normalisation lives in
-- these expressions and in store/lead_matching's statements, not in the lead field table.
CREATE INDEX leads_email_normalised
    ON leads (organization_id, lower(btrim(email)))
    WHERE email IS NOT NULL;
CREATE INDEX leads_phone_normalised
    ON leads (organization_id, regexp_replace(phone, '[^0-9]', '', 'g'))
    WHERE phone IS NOT NULL;

-- lead.merged joins the event types (0009's list, unchanged otherwise).
ALTER TABLE lead_events DROP CONSTRAINT lead_events_type_check;
ALTER TABLE lead_events ADD CONSTRAINT lead_events_type_check CHECK (
    type IN (
        'lead.created', 'lead.updated', 'lead.status_changed', 'lead.assigned',
        'lead.converted', 'lead.reopened', 'lead.dnc_changed', 'lead.contacted',
        'lead.archived', 'lead.restored', 'lead.erased', 'lead.merged'
    )
);
