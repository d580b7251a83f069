-- Bulk imports (issue 12 #3): a job per uploaded file, its counts, and the rows it refused.
-- The leads it creates point back at it through leads.import_job_id (0001), not by a foreign
-- key: a lead outlives the job's records, and a key would slow every batch insert.

CREATE TABLE import_jobs (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    format text NOT NULL CHECK (format IN ('csv', 'ndjson')),
    filename text CHECK (char_length(filename) <= 255),
    dry_run boolean NOT NULL DEFAULT false,
    total_rows integer NOT NULL DEFAULT 0 CHECK (total_rows >= 0),
    created_count integer NOT NULL DEFAULT 0 CHECK (created_count >= 0),
    -- Rows that matched an existing lead (upsert by an external id, issue 12 #4).
    updated_count integer NOT NULL DEFAULT 0 CHECK (updated_count >= 0),
    failed_count integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    -- Why a job failed as a whole (a database error past the batches it committed).
    failure text,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    -- import.completed: when the last batch committed (lead_events needs a lead, so the
    -- job records its own completion).
    completed_at timestamptz,
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX import_jobs_newest ON import_jobs (organization_id, created_at DESC);

-- One row per refused field (a row with two bad fields has two), paged by (row, id).
CREATE TABLE import_job_errors (
    organization_id uuid NOT NULL,
    job_id uuid NOT NULL,
    id bigserial NOT NULL,
    row_number integer NOT NULL CHECK (row_number >= 1),
    field text,
    message text NOT NULL,
    PRIMARY KEY (organization_id, job_id, id),
    FOREIGN KEY (organization_id, job_id)
        REFERENCES import_jobs (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX import_job_errors_rows ON import_job_errors (organization_id, job_id, row_number, id);
