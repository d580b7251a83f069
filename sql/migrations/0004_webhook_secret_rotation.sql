-- Secret rotation with overlap (Standard Webhooks): after a rotation the secret it replaced
-- keeps signing beside the new one until previous_secret_expires_at, so a receiver can switch
-- to the new secret without rejecting a delivery. Only one previous secret is kept.
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT webhook_endpoints_previous_secret_expires
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));
