-- The lead lifecycle (issue 12 #1, #2): convert, do-not-call, contact, archive, erase.

-- When the lead was archived: hidden from lists, search and subscriptions until restored.
ALTER TABLE leads ADD COLUMN archived_at timestamptz;

-- The lifecycle's event types.
ALTER TABLE lead_events DROP CONSTRAINT lead_events_type_check;
ALTER TABLE lead_events ADD CONSTRAINT lead_events_type_check CHECK (
    type IN (
        'lead.created', 'lead.updated', 'lead.status_changed', 'lead.assigned',
        'lead.converted', 'lead.reopened', 'lead.dnc_changed', 'lead.contacted',
        'lead.archived', 'lead.restored', 'lead.erased'
    )
);

-- An erased lead's row is deleted, but its history stays (scrubbed of personal data) with the
-- `lead.erased` event after it: the events no longer follow the lead row, only the
-- organization (which still takes them along when it goes).
ALTER TABLE lead_events DROP CONSTRAINT lead_events_organization_id_lead_id_fkey;
ALTER TABLE lead_events
    ADD CONSTRAINT lead_events_organization_fkey FOREIGN KEY (organization_id)
    REFERENCES organizations (id) ON DELETE CASCADE;

-- The maintained total (0002) counts what unfiltered lists show: unarchived leads. Nothing is
-- archived yet, so the stored totals hold as they are.
CREATE OR REPLACE FUNCTION lead_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_counts (organization_id, total)
    SELECT organization_id, count(*)
    FROM added
    WHERE archived_at IS NULL
    GROUP BY organization_id
    ON CONFLICT (organization_id) DO UPDATE
    SET total = lead_counts.total + EXCLUDED.total;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION lead_counts_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_counts AS c
    SET total = c.total - r.removed
    FROM (
        SELECT organization_id, count(*) AS removed
        FROM removed
        WHERE archived_at IS NULL
        GROUP BY organization_id
    ) AS r
    WHERE c.organization_id = r.organization_id;
    RETURN NULL;
END
$$;

-- Archiving and restoring change one lead at a time: a row trigger that fires only when
-- archived_at is written and changes (transition tables cannot be limited to a column, so a
-- statement trigger would copy every updated row of every other write).
CREATE FUNCTION lead_counts_archive() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_counts
    SET total = total + CASE WHEN NEW.archived_at IS NULL THEN 1 ELSE -1 END
    WHERE organization_id = NEW.organization_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_counted_on_archive
    AFTER UPDATE OF archived_at ON leads
    FOR EACH ROW
    WHEN ((OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
    EXECUTE FUNCTION lead_counts_archive();
