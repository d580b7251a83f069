-- Keyset cursors (issue 11 #2). leadsConnection without updatedSince walks
-- (organization_id, created_at DESC, id DESC), which leads_newest (0001) already is: a row
-- comparison `(created_at, id) < ($n, $m)` starts its index scan at the cursor. With
-- updatedSince the order is (updated_at, id) ascending (incremental sync), which had no index:
-- every poll sorted the organization's leads. This one serves the filter `updated_at >= $n`,
-- the cursor comparison and the order together.

CREATE INDEX leads_updated ON leads (organization_id, updated_at, id);
