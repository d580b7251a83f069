-- Totals of searches and filters past LEADGATE_EXACT_TOTAL_LIMIT are estimates (issue 14 #4):
-- counting the 50,000 leads a common word matches at 1 M leads reads some 40,000 heap pages
-- (~200 ms), and even collecting their ids from the GIN index takes ~15 ms, where the planner
-- already knows about how many there are. This is that number: the planner's row estimate for
-- `statement` with `params` as its $1 (a text array), planned for those values, never run.
-- VOLATILE because PostgreSQL allows EXPLAIN in no other kind of function; it writes nothing.
CREATE FUNCTION planned_rows(statement text, params text[]) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || statement INTO plan USING params;
    RETURN round((plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric);
END
$$;
