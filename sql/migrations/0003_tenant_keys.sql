-- Every primary key, unique constraint and foreign key of a tenant table includes
-- organization_id (issue 8, item 11), so each can be enforced on one shard once the schema is
-- distributed by organization_id (DESIGN §7), and no row can point into another organization.
-- 0001 left four global keys; tests/test_tenant_keys.py reads the catalog to keep it so.

-- lead_events: (organization_id, id), and webhook deliveries point at their event through it.
-- The id stays a bigserial, unique on its own in practice: it is the global event cursor.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_id_fkey;
ALTER TABLE lead_events DROP CONSTRAINT lead_events_pkey;
ALTER TABLE lead_events ADD CONSTRAINT lead_events_pkey PRIMARY KEY (organization_id, id);
-- The new primary key's index is exactly this one.
DROP INDEX lead_events_org;
ALTER TABLE webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (organization_id, event_id)
    REFERENCES lead_events (organization_id, id) ON DELETE CASCADE;

-- webhook_deliveries: its primary key (organization_id, id) already identifies a delivery.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_id_key;

-- webhook_attempts: (organization_id, id); read by delivery, which its foreign key also
-- needs indexed for the cascade from webhook_deliveries.
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_pkey;
ALTER TABLE webhook_attempts ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (organization_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (organization_id, delivery_id);

-- api_keys: the primary key (organization_id, id) replaces UNIQUE (id). The operator's
-- `leadgate api-key revoke <id>` names a key without its organization, so a plain (not
-- unique) index keeps that lookup cheap. The unique api_keys_key_hash stays global: a bearer
-- key is found by its hash before its organization is known (see the test's allow-list).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_id_key;
CREATE INDEX api_keys_id ON api_keys (id);
