//! The inbox's SQL, with the table names filled in once.

use crate::postgres::{Statement, Tables};

/// Every statement of the inbox, for one table prefix.
pub(super) struct Statements {
    pub(super) accept: Statement,
    pub(super) claim: Statement,
    pub(super) claim_in_entity_order: Statement,
    pub(super) heartbeat: Statement,
    pub(super) complete_batch: Statement,
    pub(super) release: Statement,
    pub(super) fail: Statement,
    pub(super) rescue: Statement,
    pub(super) sample: Statement,
}

impl Statements {
    pub(super) fn new(tables: &Tables) -> Self {
        let (events, attempts, paused) = (&tables.events, &tables.attempts, &tables.paused);
        // What both claims take: pending, due, of a type not at its limit, not paused.
        let claimable = format!(
            "state = 'pending' AND run_at <= now() AND object_type <> ALL($5::text[]) \
             AND NOT EXISTS (SELECT 1 FROM {paused} p WHERE p.namespace = $1)"
        );
        // The attempts still holding their rows, named by `$1` (ids) and `$2` (attempts).
        let held = "FROM unnest($1::bigint[], $2::integer[]) AS held(id, attempt) \
             WHERE e.id = held.id AND e.attempt = held.attempt AND e.state = 'running'";
        // What both claims do with the rows they picked.
        let take = format!(
            "UPDATE {events} e SET state = 'running', attempt = e.attempt + 1, \
               locked_until = now() + $3 * interval '1 millisecond', locked_by = $4 \
             FROM picked WHERE e.id = picked.id \
             RETURNING e.id, e.attempt, e.attempt - e.attempt_base, e.body, e.retry_unhandled"
        );
        Self {
            // `synchronous_commit` set for this statement's own transaction: acknowledged
            // means on disk, whatever the server's default. The unused CTE would not run,
            // hence the FROM.
            accept: format!(
                "INSERT INTO {events} (dedup_key, namespace, event_id, subscription_id, entity_id, \
                   object_type, event, body, headers, retry_unhandled) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10 \
                 FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable \
                 ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
            )
            .into(),
            claim: format!(
                "WITH picked AS (\
                   SELECT id FROM {events} \
                   WHERE namespace = $1 AND {claimable} \
                   ORDER BY priority DESC, run_at \
                   LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 {take}"
            )
            .into(),
            // An entity's head is its oldest event not yet done or dead: only a head is
            // taken, and only while pending. The heads are found by a skip scan over the
            // entity index (one probe per entity with work), not by reading every pending
            // row. Events without an entity keep no order: only claimable ones are
            // candidates, in the plain claim's order, so that a batch of them running or
            // waiting for a retry never hides the rest. The candidates are then looked up
            // by id (an array, so that the plan stays a key lookup before the table was
            // ever analysed). A head locked or taken by a concurrent claim is skipped, and
            // the event after it is no head until it is done, so one entity never runs two
            // at once.
            claim_in_entity_order: format!(
                "WITH RECURSIVE heads AS (\
                   (SELECT entity_id, id FROM {events} \
                    WHERE namespace = $1 AND state IN ('pending', 'running') \
                      AND entity_id IS NOT NULL \
                    ORDER BY entity_id, id LIMIT 1) \
                   UNION ALL \
                   SELECT next.entity_id, next.id FROM heads \
                   CROSS JOIN LATERAL (SELECT entity_id, id FROM {events} \
                     WHERE namespace = $1 AND state IN ('pending', 'running') \
                       AND entity_id > heads.entity_id \
                     ORDER BY entity_id, id LIMIT 1) AS next), \
                 picked AS (\
                   SELECT id FROM {events} \
                   WHERE id = ANY(ARRAY(SELECT id FROM heads UNION ALL \
                       (SELECT id FROM {events} \
                        WHERE namespace = $1 AND entity_id IS NULL AND {claimable} \
                        ORDER BY priority DESC, run_at LIMIT $2))) \
                     AND {claimable} \
                   ORDER BY priority DESC, id \
                   LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 {take}"
            )
            .into(),
            heartbeat: format!(
                "UPDATE {events} e SET locked_until = now() + $3 * interval '1 millisecond' {held}"
            )
            .into(),
            complete_batch: format!(
                "WITH done AS (\
                   UPDATE {events} e SET state = 'done', done_at = now(), \
                     locked_until = NULL, locked_by = NULL, last_error = NULL \
                   FROM unnest($1::bigint[], $2::integer[], $3::bigint[]) \
                     AS ran(id, attempt, duration_ms) \
                   WHERE e.id = ran.id AND e.attempt = ran.attempt AND e.state = 'running' \
                   RETURNING e.id, e.attempt, ran.duration_ms) \
                 INSERT INTO {attempts} (event_row, attempt, worker, outcome, duration_ms) \
                 SELECT id, attempt, $4, 'done', duration_ms FROM done RETURNING event_row"
            )
            .into(),
            // The base moves with the attempt: an attempt that never started is not
            // counted against the retry schedule.
            release: format!(
                "WITH released AS (\
                   UPDATE {events} e SET state = 'pending', locked_until = NULL, \
                     locked_by = NULL, attempt_base = e.attempt_base + 1 {held} \
                   RETURNING e.id, e.attempt) \
                 INSERT INTO {attempts} (event_row, attempt, worker, outcome, error) \
                 SELECT id, attempt, $3, 'released', 'the worker stopped before it started' \
                 FROM released"
            )
            .into(),
            fail: format!(
                "WITH failed AS (\
                   UPDATE {events} SET state = $5, \
                     run_at = now() + $6 * interval '1 millisecond', \
                     locked_until = NULL, locked_by = NULL, last_error = $7 \
                   WHERE id = $1 AND attempt = $2 AND state = 'running' \
                   RETURNING id, attempt) \
                 INSERT INTO {attempts} (event_row, attempt, worker, outcome, error, duration_ms) \
                 SELECT id, attempt, $3, 'failed', $7, $4 FROM failed RETURNING 1"
            )
            .into(),
            // A lapsed lease counts as a failed attempt of its own kind: after `$2` lapses
            // (a poison event that kills its worker) or `$3` attempts, the event is dead.
            // Answers every row it freed, with the body of those it buried (for the hook).
            rescue: format!(
                "WITH lapsed AS (\
                   UPDATE {events} SET lapses = lapses + 1, locked_until = NULL, run_at = now(), \
                     state = CASE WHEN lapses + 1 >= $2 OR attempt - attempt_base >= $3 THEN 'dead' ELSE 'pending' END, \
                     last_error = CASE WHEN lapses + 1 >= $2 OR attempt - attempt_base >= $3 \
                       THEN 'the lease lapsed ' || (lapses + 1) || ' times without a completion' \
                       ELSE last_error END \
                   WHERE id IN (\
                     SELECT id FROM {events} \
                     WHERE namespace = $1 AND state = 'running' AND locked_until <= now() \
                     LIMIT 1000 FOR UPDATE SKIP LOCKED) \
                   RETURNING id, attempt, locked_by, attempt - attempt_base AS tries, lapses, \
                     CASE WHEN state = 'dead' THEN body END AS body), \
                 logged AS (\
                   INSERT INTO {attempts} (event_row, attempt, worker, outcome, error) \
                   SELECT id, attempt, locked_by, 'lapsed', 'the lease lapsed' FROM lapsed) \
                 SELECT id, attempt, tries, lapses, body FROM lapsed"
            )
            .into(),
            // Each count on its partial index: done rows, most of the table, are never read.
            sample: format!(
                "SELECT p.pending, p.retrying, r.running, d.dead, \
                   (extract(epoch FROM now() - p.oldest) * 1000)::bigint \
                 FROM (SELECT count(*) AS pending, \
                         count(*) FILTER (WHERE attempt > attempt_base) AS retrying, \
                         min(received_at) AS oldest \
                       FROM {events} WHERE namespace = $1 AND state = 'pending') p, \
                      (SELECT count(*) AS running FROM {events} \
                       WHERE namespace = $1 AND state = 'running') r, \
                      (SELECT count(*) AS dead FROM {events} \
                       WHERE namespace = $1 AND state = 'dead') d"
            )
            .into(),
        }
    }
}
