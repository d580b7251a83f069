-- Who made each event happen (issue 10 #3): {"type": "api_key" | "user", "id", "requestId"},
-- the API key's id or the token's `sub`, and the X-Request-Id of the write. Written in the
-- event's own INSERT. Events from before this migration have none (NULL): it was not recorded.
ALTER TABLE lead_events ADD COLUMN actor jsonb;
-- NOT VALID: every existing row is NULL, so there is nothing to check, and skipping the scan
-- keeps the migration instant on a large outbox; new rows are checked all the same.
ALTER TABLE lead_events ADD CONSTRAINT lead_events_actor_shape CHECK (
    actor IS NULL
    OR (
        jsonb_typeof(actor) = 'object'
        AND actor ->> 'type' IN ('api_key', 'user')
        AND jsonb_typeof(actor -> 'id') = 'string'
        AND jsonb_typeof(actor -> 'requestId') = 'string'
    )
) NOT VALID;

-- createdBy is the creating actor's id: an API key's UUID, or an identity provider's `sub`,
-- which is any string (auth0|…, a number, an email), so the column becomes text. Existing
-- values (API key UUIDs) keep their text form. This rewrites `leads` once, under its lock.
ALTER TABLE leads ALTER COLUMN created_by TYPE text USING created_by::text;
