-- doc/engine-study/procs.sql: hand-written prototypes of the job engine, one
-- procedure per design.  Each commits once per batch and keeps its counters
-- in bench_job (row 1) in the same transaction, like the real engine must.
-- The predicate is written out (not passed as text) so that every batch
-- statement is a static, plan-cached PL/pgSQL statement.
--
-- "Row existed at start" checks (p_check):
--   none     no check at all (inserts after start would be deleted)
--   cast     xmin::text::bigint compared numerically with the 32-bit start
--            snapshot (xmin, xmax, xip); wrong across xid wraparound
--   visible  pg_visible_in_snapshot(xmin::text::xid8, start snapshot); only
--            right while the epoch is 0
--   age      (age(xmin) > age(start xmax) OR age(xmin) < 0) AND xmin <> ALL
--            (start xip): "xmin is not one of the xids assigned since the
--            start (the window [start xmax, now]) nor in progress at start",
--            32-bit modular arithmetic done by age(), no text round trip.
--            Never accepts a row inserted after the start; an old frozen
--            row whose raw 32-bit xmin happens to fall in the window is
--            wrongly skipped (odds: xids used during the job / 2^32).

CREATE OR REPLACE FUNCTION bench_xid32(x xid8) RETURNS bigint LANGUAGE sql IMMUTABLE
AS $$ SELECT x::text::bigint & 4294967295 $$;

-- B: walk the heap in physical order, block range sized to ~p_batch
-- candidates.  p_restrict: none | prefilter | fallback_row | fallback_bisect
CREATE OR REPLACE PROCEDURE job_b(p_check text DEFAULT 'none', p_batch int DEFAULT 10000,
					   p_restrict text DEFAULT 'none')
LANGUAGE plpgsql AS $$
DECLARE
	v_snap		pg_snapshot;
	v_xmin32	bigint;
	v_xmax32	bigint;
	v_xip32		bigint[];
	v_xmax		xid;
	v_xip		xid[];
	v_nblocks	bigint;
	v_count		bigint;
	v_step		bigint;
	v_b0		bigint := 0;
	v_lo		tid;
	v_hi		tid;
	v_n			bigint;
	v_f			bigint;
	v_age		int;
	r			record;
BEGIN
	v_snap := pg_current_snapshot();
	v_xmin32 := bench_xid32(pg_snapshot_xmin(v_snap));
	v_xmax32 := bench_xid32(pg_snapshot_xmax(v_snap));
	v_xip32 := ARRAY(SELECT bench_xid32(x) FROM pg_snapshot_xip(v_snap) x);
	v_xmax := v_xmax32::text::xid;
	v_xip := ARRAY(SELECT x::text::xid FROM unnest(v_xip32) x);
	SELECT count(*) INTO v_count FROM contact
	WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00';
	v_nblocks := pg_relation_size('contact') / current_setting('block_size')::int;
	v_step := greatest(1, ceil(p_batch::numeric * v_nblocks / greatest(v_count, 1)));
	INSERT INTO bench_job (id, snap, candidate_count) VALUES (1, v_snap, v_count);
	COMMIT;

	WHILE v_b0 < v_nblocks LOOP
		v_lo := format('(%s,0)', v_b0)::tid;
		v_hi := format('(%s,0)', least(v_b0 + v_step, v_nblocks))::tid;
		v_f := 0;
		IF p_restrict = 'none' THEN
			IF p_check = 'none' THEN
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00';
			ELSIF p_check = 'cast' THEN
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND (xmin::text::bigint < v_xmin32
					 OR (xmin::text::bigint < v_xmax32
						 AND xmin::text::bigint <> ALL (v_xip32)));
			ELSIF p_check = 'visible' THEN
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND pg_visible_in_snapshot(xmin::text::xid8, v_snap);
			ELSIF p_check = 'age' THEN
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip);
			ELSIF p_check = 'age1' AND cardinality(v_xip) = 0 THEN
				-- age() measures from a per-transaction stable xid, so
				-- age(start xmax) taken now is the DELETE's; the OR's second
				-- arm only runs for the rare new rows
				v_age := age(v_xmax);
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND (age(xmin) > v_age OR age(xmin) < 0);
			ELSIF p_check = 'age1' THEN
				v_age := age(v_xmax);
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND (age(xmin) > v_age OR age(xmin) < 0) AND xmin <> ALL (v_xip);
			ELSE
				RAISE EXCEPTION 'unknown check %', p_check;
			END IF;
			GET DIAGNOSTICS v_n = ROW_COUNT;
		ELSIF p_restrict = 'prefilter' THEN
			-- one anti-join keeps the blocked rows out of the batch ...
			DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
			AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
			AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip)
			AND NOT EXISTS (SELECT 1 FROM contact_note n
							WHERE n.contact_id = contact.id);
			GET DIAGNOSTICS v_n = ROW_COUNT;
			-- ... and each of them is then tried alone, so that its failure
			-- carries the real error (and a row whose child vanished in the
			-- meantime is deleted after all)
			FOR r IN SELECT c.ctid AS t, c.id FROM contact c
				WHERE c.ctid >= v_lo AND c.ctid < v_hi
				AND c.status = 'closed' AND c.created_at < '2021-08-23 00:00:00+00'
				AND (age(c.xmin) > age(v_xmax) OR age(c.xmin) < 0) AND c.xmin <> ALL (v_xip)
				AND EXISTS (SELECT 1 FROM contact_note n WHERE n.contact_id = c.id)
			LOOP
				BEGIN
					DELETE FROM contact WHERE ctid = r.t;
					v_n := v_n + 1;
				EXCEPTION WHEN foreign_key_violation THEN
					INSERT INTO bench_failure (record_key, sqlstate, message)
					VALUES (jsonb_build_object('id', r.id), SQLSTATE, SQLERRM);
					v_f := v_f + 1;
				END;
			END LOOP;
		ELSIF p_restrict = 'fallback_row' THEN
			BEGIN
				DELETE FROM contact WHERE ctid >= v_lo AND ctid < v_hi
				AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
				AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip);
				GET DIAGNOSTICS v_n = ROW_COUNT;
			EXCEPTION WHEN foreign_key_violation THEN
				v_n := 0;
				FOR r IN SELECT c.ctid AS t, c.id FROM contact c
					WHERE c.ctid >= v_lo AND c.ctid < v_hi
					AND c.status = 'closed' AND c.created_at < '2021-08-23 00:00:00+00'
					AND (age(c.xmin) > age(v_xmax) OR age(c.xmin) < 0) AND c.xmin <> ALL (v_xip)
				LOOP
					BEGIN
						DELETE FROM contact WHERE ctid = r.t;
						v_n := v_n + 1;
					EXCEPTION WHEN foreign_key_violation THEN
						INSERT INTO bench_failure (record_key, sqlstate, message)
						VALUES (jsonb_build_object('id', r.id), SQLSTATE, SQLERRM);
						v_f := v_f + 1;
					END;
				END LOOP;
			END;
		ELSIF p_restrict = 'fallback_bisect' THEN
			SELECT d, f INTO v_n, v_f
			FROM bench_try_range(v_b0, least(v_b0 + v_step, v_nblocks), v_xmax, v_xip);
		ELSE
			RAISE EXCEPTION 'unknown restrict mode %', p_restrict;
		END IF;
		UPDATE bench_job SET success_count = success_count + v_n,
			failure_count = failure_count + v_f,
			batches = batches + 1, pos = least(v_b0 + v_step, v_nblocks)
		WHERE id = 1;
		COMMIT;
		v_b0 := v_b0 + v_step;
	END LOOP;
END
$$;

-- B's bisecting fallback: try blocks [b0, b1) whole; on a RESTRICT
-- violation split in halves, down to one block, then row by row.
CREATE OR REPLACE FUNCTION bench_try_range(b0 bigint, b1 bigint, v_xmax xid, v_xip xid[],
								OUT d bigint, OUT f bigint)
LANGUAGE plpgsql AS $$
DECLARE
	r	record;
	m	bigint;
	d2	bigint;
	f2	bigint;
BEGIN
	d := 0;
	f := 0;
	BEGIN
		DELETE FROM contact WHERE ctid >= format('(%s,0)', b0)::tid
		AND ctid < format('(%s,0)', b1)::tid
		AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
		AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip);
		GET DIAGNOSTICS d = ROW_COUNT;
		RETURN;
	EXCEPTION WHEN foreign_key_violation THEN
		NULL;
	END;
	IF b1 - b0 > 1 THEN
		m := (b0 + b1) / 2;
		SELECT t.d, t.f INTO d, f FROM bench_try_range(b0, m, v_xmax, v_xip) t;
		SELECT t.d, t.f INTO d2, f2 FROM bench_try_range(m, b1, v_xmax, v_xip) t;
		d := d + d2;
		f := f + f2;
		RETURN;
	END IF;
	FOR r IN SELECT c.ctid AS t, c.id FROM contact c
		WHERE c.ctid >= format('(%s,0)', b0)::tid AND c.ctid < format('(%s,0)', b1)::tid
		AND c.status = 'closed' AND c.created_at < '2021-08-23 00:00:00+00'
		AND (age(c.xmin) > age(v_xmax) OR age(c.xmin) < 0) AND c.xmin <> ALL (v_xip)
	LOOP
		BEGIN
			DELETE FROM contact WHERE ctid = r.t;
			d := d + 1;
		EXCEPTION WHEN foreign_key_violation THEN
			INSERT INTO bench_failure (record_key, sqlstate, message)
			VALUES (jsonb_build_object('id', r.id), SQLSTATE, SQLERRM);
			f := f + 1;
		END;
	END LOOP;
END
$$;

-- C: materialize the candidate TIDs at start (p_batch per chunk, committed),
-- then one TID-scan DELETE per chunk.  p_check: none | age | age1.
-- p_restrict: none | prefilter.  p_mat: sort (window ordered by ctid, then
-- sorted arrays) | fast (row_number() OVER () in scan order, hash
-- aggregate, no sort: a TID scan sorts its array itself).
DROP PROCEDURE IF EXISTS job_c(text, int, text);
CREATE OR REPLACE PROCEDURE job_c(p_check text DEFAULT 'none', p_batch int DEFAULT 10000,
					   p_restrict text DEFAULT 'none', p_mat text DEFAULT 'sort')
LANGUAGE plpgsql AS $$
DECLARE
	v_snap		pg_snapshot;
	v_xmax		xid;
	v_xip		xid[];
	v_count		bigint;
	v_chunks	int;
	v_tids		tid[];
	v_n			bigint;
	v_f			bigint;
	v_age		int;
	r			record;
BEGIN
	v_snap := pg_current_snapshot();
	v_xmax := bench_xid32(pg_snapshot_xmax(v_snap))::text::xid;
	v_xip := ARRAY(SELECT bench_xid32(x)::text::xid FROM pg_snapshot_xip(v_snap) x);
	IF p_mat = 'fast' THEN
		INSERT INTO bench_tid_chunk (chunk, tids)
		SELECT rn / p_batch, array_agg(t)
		FROM (SELECT ctid AS t, row_number() OVER () - 1 AS rn FROM contact
			  WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00') s
		GROUP BY 1;
	ELSE
		INSERT INTO bench_tid_chunk (chunk, tids)
		SELECT (rn - 1) / p_batch, array_agg(t ORDER BY t)
		FROM (SELECT ctid AS t, row_number() OVER (ORDER BY ctid) rn FROM contact
			  WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00') s
		GROUP BY 1;
	END IF;
	SELECT count(*), coalesce(sum(cardinality(tids)), 0) INTO v_chunks, v_count
	FROM bench_tid_chunk;
	INSERT INTO bench_job (id, snap, candidate_count) VALUES (1, v_snap, v_count);
	COMMIT;

	FOR i IN 0 .. v_chunks - 1 LOOP
		SELECT tids INTO v_tids FROM bench_tid_chunk WHERE chunk = i;
		v_f := 0;
		IF p_restrict = 'prefilter' THEN
			DELETE FROM contact WHERE ctid = ANY (v_tids)
			AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
			AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip)
			AND NOT EXISTS (SELECT 1 FROM contact_note n
							WHERE n.contact_id = contact.id);
			GET DIAGNOSTICS v_n = ROW_COUNT;
			FOR r IN SELECT c.ctid AS t, c.id FROM contact c
				WHERE c.ctid = ANY (v_tids)
				AND c.status = 'closed' AND c.created_at < '2021-08-23 00:00:00+00'
				AND (age(c.xmin) > age(v_xmax) OR age(c.xmin) < 0) AND c.xmin <> ALL (v_xip)
				AND EXISTS (SELECT 1 FROM contact_note n WHERE n.contact_id = c.id)
			LOOP
				BEGIN
					DELETE FROM contact WHERE ctid = r.t;
					v_n := v_n + 1;
				EXCEPTION WHEN foreign_key_violation THEN
					INSERT INTO bench_failure (record_key, sqlstate, message)
					VALUES (jsonb_build_object('id', r.id), SQLSTATE, SQLERRM);
					v_f := v_f + 1;
				END;
			END LOOP;
		ELSIF p_check = 'none' THEN
			DELETE FROM contact WHERE ctid = ANY (v_tids)
			AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00';
			GET DIAGNOSTICS v_n = ROW_COUNT;
		ELSIF p_check = 'age1' AND cardinality(v_xip) = 0 THEN
			v_age := age(v_xmax);
			DELETE FROM contact WHERE ctid = ANY (v_tids)
			AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
			AND (age(xmin) > v_age OR age(xmin) < 0);
			GET DIAGNOSTICS v_n = ROW_COUNT;
		ELSE
			DELETE FROM contact WHERE ctid = ANY (v_tids)
			AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
			AND (age(xmin) > age(v_xmax) OR age(xmin) < 0) AND xmin <> ALL (v_xip);
			GET DIAGNOSTICS v_n = ROW_COUNT;
		END IF;
		UPDATE bench_job SET success_count = success_count + v_n,
			failure_count = failure_count + v_f,
			batches = batches + 1, pos = i + 1
		WHERE id = 1;
		COMMIT;
	END LOOP;
END
$$;

-- D: materialize the candidate primary keys at start, then one
-- DELETE ... WHERE id = ANY(chunk) per chunk.
CREATE OR REPLACE PROCEDURE job_d(p_batch int DEFAULT 10000)
LANGUAGE plpgsql AS $$
DECLARE
	v_count		bigint;
	v_chunks	int;
	v_ids		bigint[];
	v_n			bigint;
BEGIN
	INSERT INTO bench_id_chunk (chunk, ids)
	SELECT (rn - 1) / p_batch, array_agg(id ORDER BY id)
	FROM (SELECT id, row_number() OVER (ORDER BY id) rn FROM contact
		  WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00') s
	GROUP BY 1;
	SELECT count(*), coalesce(sum(cardinality(ids)), 0) INTO v_chunks, v_count
	FROM bench_id_chunk;
	INSERT INTO bench_job (id, snap, candidate_count)
	VALUES (1, pg_current_snapshot(), v_count);
	COMMIT;

	FOR i IN 0 .. v_chunks - 1 LOOP
		SELECT ids INTO v_ids FROM bench_id_chunk WHERE chunk = i;
		DELETE FROM contact WHERE id = ANY (v_ids)
		AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00';
		GET DIAGNOSTICS v_n = ROW_COUNT;
		UPDATE bench_job SET success_count = success_count + v_n,
			batches = batches + 1, pos = i + 1
		WHERE id = 1;
		COMMIT;
	END LOOP;
END
$$;

-- E: the naive loop, re-finding its targets through the index every batch.
CREATE OR REPLACE PROCEDURE job_e(p_batch int DEFAULT 10000)
LANGUAGE plpgsql AS $$
DECLARE
	v_n		bigint;
BEGIN
	INSERT INTO bench_job (id, snap, candidate_count)
	VALUES (1, pg_current_snapshot(), 0);
	COMMIT;
	LOOP
		DELETE FROM contact WHERE id IN (
			SELECT id FROM contact
			WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00'
			LIMIT p_batch);
		GET DIAGNOSTICS v_n = ROW_COUNT;
		EXIT WHEN v_n = 0;
		UPDATE bench_job SET success_count = success_count + v_n,
			batches = batches + 1
		WHERE id = 1;
		COMMIT;
	END LOOP;
END
$$;
