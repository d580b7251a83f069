-- A key's own rate limit (issue 11 #3): `leadgate api-key create --rate RATE[,BURST]`, in
-- points per second and the bucket they refill (README "Rate limits"). NULL: the deployment's
-- LEADGATE_RATE_PER_CREDENTIAL applies. Both nullable columns are metadata-only additions.
ALTER TABLE api_keys
    ADD COLUMN rate_per_second double precision,
    ADD COLUMN rate_burst double precision;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_rate_shape CHECK (
    (rate_per_second IS NULL AND rate_burst IS NULL)
    OR (rate_per_second > 0 AND rate_burst >= 1)
);
