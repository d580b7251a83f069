-- Likely duplicates found in one probe per value, in the statement that inserts the lead
-- (issue 14 #5).
--
-- 0011's indexes gave the leads sharing an email or phone in no particular order, so each
-- create read and sorted every one of them: an email many leads share cost its creates more
-- and more. Ordered by (created_at, id) after the value, a probe reads the oldest few and
-- stops at the cap, from the index alone once the pages are all-visible. Merged leads are
-- never reported: they are not in these indexes.
CREATE INDEX leads_email_duplicates
    ON leads (organization_id, lower(btrim(email)), created_at, id)
    WHERE email IS NOT NULL AND merged_into IS NULL;
CREATE INDEX leads_phone_duplicates
    ON leads (organization_id, regexp_replace(phone, '[^0-9]', '', 'g'), created_at, id)
    WHERE phone IS NOT NULL AND merged_into IS NULL;
DROP INDEX leads_email_normalised;
DROP INDEX leads_phone_normalised;

-- The likely duplicates of a lead about to be created with this normalised email and phone
-- (NULL: none): each lead once, email first, oldest first, at most `cap`. First it takes the
-- advisory locks of both values, held to commit, so creates of one email or phone queue
-- here. Then it searches with a snapshot taken after those locks: a function, because a
-- statement's own snapshot is taken when it starts, before it waits (plpgsql takes a new one
-- for each query of a VOLATILE function). So the lead a concurrent create just committed is
-- seen: REJECT cannot miss it, REPORT lists it. Called from store/lead_writes.py's
-- CREATE_LEAD before its INSERT; the locks use a two-int4 key space, apart from the
-- one-bigint keys of store/events.py and the migrations.
CREATE FUNCTION lead_duplicates(organization uuid, email_key text, phone_key text, cap integer)
RETURNS TABLE (id uuid, reason text)
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    -- In one order for every transaction: no deadlock.
    PERFORM pg_advisory_xact_lock(
        hashtext('leadgate.lead_duplicates'), hashtext(organization::text || ':' || v.value_key))
    FROM (
        SELECT value_key
        FROM unnest(ARRAY['email:' || email_key, 'phone:' || phone_key]) AS value_key
        WHERE value_key IS NOT NULL
        ORDER BY value_key
    ) AS v;
    RETURN QUERY
    SELECT f.id, f.reason
    FROM (
        SELECT DISTINCT ON (m.id) m.id, m.reason, m.rank, m.created_at
        FROM (
            (
                SELECT l.id, 'email' AS reason, 0 AS rank, l.created_at
                FROM leads AS l
                WHERE email_key IS NOT NULL
                  AND l.organization_id = organization
                  AND lower(btrim(l.email)) = email_key
                  AND l.email IS NOT NULL
                  AND l.merged_into IS NULL
                ORDER BY l.created_at, l.id
                LIMIT cap
            )
            UNION ALL
            (
                SELECT l.id, 'phone', 1, l.created_at
                FROM leads AS l
                WHERE phone_key IS NOT NULL
                  AND l.organization_id = organization
                  AND regexp_replace(l.phone, '[^0-9]', '', 'g') = phone_key
                  AND l.phone IS NOT NULL
                  AND l.merged_into IS NULL
                ORDER BY l.created_at, l.id
                LIMIT cap
            )
        ) AS m
        ORDER BY m.id, m.rank
    ) AS f
    ORDER BY f.rank, f.created_at, f.id
    LIMIT cap;
END
$$;
