-- The NATS relay (events/nats_bus.py, COMMITTED_AFTER) reads every organization's events after
-- an id, in id order. Since 0003 no index starts with id, so each of its polls scanned the
-- whole table: 8 ms at 50,000 events, 37 ms at 200,000, longer than the relay's idle poll.
CREATE INDEX lead_events_by_id ON lead_events (id);
