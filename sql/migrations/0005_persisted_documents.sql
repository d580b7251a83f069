-- Persisted documents (issue 11 #1), keyed by the SHA-256 of their text: automatic persisted
-- queries (Apollo's protocol) and trusted documents loaded from a client's manifest with
-- `leadgate documents add`. Shared by every process of the deployment.
--
-- Not tenant data, so no organization_id: a document is a client application's code, the
-- same for every organization using that client (one row however many tenants send it), and
-- its key is derived from its text, so no tenant can put another text behind a hash. The
-- trusted set is a property of the deployment (which frontends it serves), not of a tenant.
CREATE TABLE persisted_documents (
    sha256 text PRIMARY KEY,
    body text NOT NULL,
    -- Loaded from a manifest: the only documents LEADGATE_TRUSTED_DOCUMENTS=only runs.
    -- Registered by a client's APQ round trip otherwise.
    trusted boolean NOT NULL DEFAULT false,
    -- The manifest's operation name, for an operator reading the table.
    operation_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT persisted_documents_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$')
);
