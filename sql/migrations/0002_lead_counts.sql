-- Each organization's lead total, maintained in the writing transaction, so an unfiltered page
-- reads its total instead of counting every lead on every request. Statement-level triggers
-- with transition tables: a bulk COPY of many leads costs one counter update, not one a row.

CREATE TABLE lead_counts (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    total bigint NOT NULL DEFAULT 0 CHECK (total >= 0)
);

INSERT INTO lead_counts (organization_id, total)
SELECT o.id, (SELECT count(*) FROM leads AS l WHERE l.organization_id = o.id)
FROM organizations AS o;

CREATE FUNCTION lead_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lead_counts (organization_id, total)
    SELECT organization_id, count(*)
    FROM added
    GROUP BY organization_id
    ON CONFLICT (organization_id) DO UPDATE
    SET total = lead_counts.total + EXCLUDED.total;
    RETURN NULL;
END
$$;

CREATE FUNCTION lead_counts_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_counts AS c
    SET total = c.total - r.removed
    FROM (
        SELECT organization_id, count(*) AS removed
        FROM removed
        GROUP BY organization_id
    ) AS r
    WHERE c.organization_id = r.organization_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_counted_on_insert
    AFTER INSERT ON leads
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION lead_counts_add();

CREATE TRIGGER leads_counted_on_delete
    AFTER DELETE ON leads
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION lead_counts_remove();
