-- Organization events (issue 12 #3): something that happened to the organization rather than
-- to one lead. Today that is a bulk import ending: import.completed, or import.failed when its
-- process stopped or lost the database mid-way. Such an event is a lead_events row with no lead
-- and no per-lead sequence: the table is the outbox, so webhook deliveries reference it (0003),
-- the NATS relay publishes it and the `after` cursor counts it, like any event.
ALTER TABLE lead_events ALTER COLUMN lead_id DROP NOT NULL;
ALTER TABLE lead_events ALTER COLUMN sequence DROP NOT NULL;

-- The import's events join the types (0011's list, unchanged otherwise).
ALTER TABLE lead_events DROP CONSTRAINT lead_events_type_check;
ALTER TABLE lead_events ADD CONSTRAINT lead_events_type_check CHECK (
    type IN (
        'lead.created', 'lead.updated', 'lead.status_changed', 'lead.assigned',
        'lead.converted', 'lead.reopened', 'lead.dnc_changed', 'lead.contacted',
        'lead.archived', 'lead.restored', 'lead.erased', 'lead.merged',
        'import.completed', 'import.failed'
    )
);

-- A lead and its sequence exactly for lead events, neither for organization events. The
-- unique (organization_id, lead_id, sequence) of 0001 keeps holding for lead events: NULLs are
-- distinct, so organization events never collide with it or with each other.
ALTER TABLE lead_events ADD CONSTRAINT lead_events_subject_check CHECK (
    CASE
        WHEN type IN ('import.completed', 'import.failed')
            THEN lead_id IS NULL AND sequence IS NULL
        ELSE lead_id IS NOT NULL AND sequence IS NOT NULL
    END
);
