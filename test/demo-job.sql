-- The sample job of test/demo: purge inactive contacts untouched for six
-- months.  Their activities go with them (ON DELETE CASCADE), their support
-- cases stay with the contact cleared (SET NULL), and the few that have a
-- signed contract stay (RESTRICT): those become failures, the job goes on.
\set ON_ERROR_STOP 1
\set qs '{"entity": "crm.contact", "criteria": {"filter_operator": "and", "conditions": [{"attribute": "status", "operator": "eq", "values": ["inactive"]}, {"attribute": "modified_at", "operator": "olderthan-x-months", "values": [6]}]}}'

\echo == what the job would delete (bulkdelete.preview)
SELECT query_index, relation, matching_rows, sql FROM bulkdelete.preview(:'qs');
SELECT c->>'relation' AS relation, c->>'action' AS on_delete, c->>'rows' AS rows
FROM bulkdelete.preview(:'qs'), jsonb_array_elements(cascade) c;

\echo == submitting the job and waiting for it (LISTEN bulkdelete would tell too)
SELECT bulkdelete.submit(:'qs', name => 'purge inactive contacts') AS job \gset
SELECT bulkdelete.wait(:job, '10 minutes') AS final_state;

\echo == outcome (bulkdelete.jobs)
SELECT id, name, state, candidate_count, success_count, failure_count,
       skipped_count, cascade_count, batches, elapsed, rows_per_second
FROM bulkdelete.jobs WHERE id = :job;

\echo == rows removed by ON DELETE CASCADE, per table
SELECT key AS relation, value AS rows FROM bulkdelete.operation, jsonb_each(cascade_breakdown)
WHERE id = :job;

\echo == rows that could not be deleted, and why
SELECT sqlstate, message, count(*) AS rows, min(record_key::text) AS first_key
FROM bulkdelete.failure WHERE operation_id = :job GROUP BY 1, 2;

\echo == support cases whose contact was deleted keep their history
SELECT count(*) AS cases_without_contact FROM crm.support_case WHERE contact_id IS NULL;
