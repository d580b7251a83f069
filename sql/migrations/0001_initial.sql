-- The whole data model of DESIGN §2. Every tenant table carries organization_id, leads its
-- primary key with it, and points at other tenant rows through composite foreign keys, so a
-- row can never reference another organization's data and the schema can later be
-- distributed by organization_id.

CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL DEFAULT '',
    prefix text NOT NULL,
    key_hash bytea NOT NULL,
    can_write boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    last_used_at timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (id)
);
-- Authentication finds a key by its hash before it knows the organization: the one lookup
-- that is global by nature (a reference table once distributed).
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);

CREATE TABLE pipeline_stages (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    stage_key text NOT NULL CHECK (stage_key ~ '^[a-z][a-z0-9_]{0,63}$'),
    stage_label text NOT NULL CHECK (char_length(stage_label) BETWEEN 1 AND 100),
    color text NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    semantic_slot text NOT NULL CHECK (semantic_slot IN ('new', 'working', 'won', 'lost')),
    position integer NOT NULL,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, stage_key),
    UNIQUE (organization_id, position)
);

CREATE TABLE advisors (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE contacts (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    first_name text,
    last_name text,
    email text,
    phone text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);

-- The words of a text (PostgreSQL's 'simple' parser, lower-cased) and each one's prefixes of
-- 2 to 20 characters. Longer words are found by their first 20 characters.
CREATE FUNCTION search_prefixes(document text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (
    SELECT coalesce(array_to_tsvector(array_agg(DISTINCT left(word, n))), ''::tsvector)
    FROM unnest(tsvector_to_array(to_tsvector('simple', document))) AS word,
        generate_series(least(2, length(word)), least(length(word), 20)) AS n
);

CREATE TABLE leads (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    business_name text CHECK (char_length(business_name) BETWEEN 1 AND 255),
    contact_first_name text CHECK (char_length(contact_first_name) <= 100),
    contact_last_name text CHECK (char_length(contact_last_name) <= 100),
    email text CHECK (char_length(email) <= 320),
    phone text CHECK (char_length(phone) <= 20),
    industry text CHECK (char_length(industry) <= 100),
    monthly_revenue numeric CHECK (monthly_revenue >= 0),
    requested_amount numeric CHECK (requested_amount >= 0),
    source text NOT NULL DEFAULT 'manual'
        CHECK (source IN ('manual', 'csv_import', 'api', 'web_form', 'referral', 'dialer')),
    priority text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    is_do_not_call boolean NOT NULL DEFAULT false,
    dnc_reason text,
    dnc_at timestamptz,
    tags text[] NOT NULL DEFAULT '{}',
    custom_fields jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    external_ids jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(external_ids) = 'object'),
    lead_score integer,
    stage_id uuid NOT NULL,
    primary_advisor_id uuid,
    contact_id uuid,
    last_contacted_at timestamptz,
    stage_changed_at timestamptz NOT NULL DEFAULT now(),
    converted_at timestamptz,
    converted_account_id uuid,
    converted_contact_id uuid,
    import_job_id uuid,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The sequence number of this lead's latest event (events carry a per-lead sequence).
    event_sequence integer NOT NULL DEFAULT 0,
    -- Core full-text search ('simple': names are not English words to be stemmed) over the
    -- business name, contact names and the email, whole and split at punctuation (so `acme`
    -- finds jane@acme.com). Every word is indexed with its prefixes (search_prefixes), so a
    -- prefix search is an exact lexeme match: the planner then knows from the statistics how
    -- rare a term is, which it cannot for `term:*` (it assumes the worst and scans).
    search tsvector GENERATED ALWAYS AS (
        search_prefixes(
            coalesce(business_name, '') || ' ' || coalesce(contact_first_name, '') || ' '
            || coalesce(contact_last_name, '') || ' ' || coalesce(email, '') || ' '
            || regexp_replace(coalesce(email, ''), '[^[:alnum:]]+', ' ', 'g'))
    ) STORED,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, stage_id) REFERENCES pipeline_stages (organization_id, id),
    FOREIGN KEY (organization_id, primary_advisor_id)
        REFERENCES advisors (organization_id, id) ON DELETE SET NULL (primary_advisor_id),
    FOREIGN KEY (organization_id, contact_id)
        REFERENCES contacts (organization_id, id) ON DELETE SET NULL (contact_id)
);
CREATE INDEX leads_newest ON leads (organization_id, created_at DESC, id DESC);
CREATE INDEX leads_search ON leads USING gin (search);
CREATE INDEX leads_stage ON leads (organization_id, stage_id);
CREATE INDEX leads_advisor ON leads (organization_id, primary_advisor_id);

-- The outbox and the history. xact_id lets readers stream only events whose transaction is
-- below the visibility horizon (a bigserial is assigned at insert, not at commit).
CREATE TABLE lead_events (
    id bigserial PRIMARY KEY,
    organization_id uuid NOT NULL,
    lead_id uuid NOT NULL,
    sequence integer NOT NULL,
    type text NOT NULL
        CHECK (type IN ('lead.created', 'lead.updated', 'lead.status_changed', 'lead.assigned')),
    payload jsonb NOT NULL DEFAULT '{}',
    xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, lead_id)
        REFERENCES leads (organization_id, id) ON DELETE CASCADE,
    UNIQUE (organization_id, lead_id, sequence)
);
CREATE INDEX lead_events_org ON lead_events (organization_id, id);
CREATE INDEX lead_events_xact ON lead_events (xact_id);

CREATE TABLE webhook_endpoints (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    url text NOT NULL CHECK (char_length(url) <= 2048),
    secret text NOT NULL,
    event_types text[] NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE webhook_deliveries (
    organization_id uuid NOT NULL,
    id bigserial NOT NULL,
    event_id bigint NOT NULL REFERENCES lead_events (id) ON DELETE CASCADE,
    endpoint_id uuid NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'succeeded', 'failed')),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- While a dispatcher sends it: no other dispatcher may claim it before then.
    leased_until timestamptz,
    response_status integer,
    error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (id),
    UNIQUE (organization_id, endpoint_id, event_id),
    FOREIGN KEY (organization_id, endpoint_id)
        REFERENCES webhook_endpoints (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every HTTP attempt of a delivery, for the record and for debugging receivers.
CREATE TABLE webhook_attempts (
    organization_id uuid NOT NULL,
    id bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL,
    attempt integer NOT NULL,
    response_status integer,
    error text,
    duration_ms integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, delivery_id)
        REFERENCES webhook_deliveries (organization_id, id) ON DELETE CASCADE
);

CREATE TABLE idempotency_keys (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    state text NOT NULL CHECK (state IN ('in_flight', 'done')),
    response_status integer,
    -- The response body exactly as sent, so a replay is byte for byte the original.
    response bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
