#!/bin/bash
# doc/engine-study/run.sh: measure the engine prototypes of procs.sql against a
# plain DELETE.  Starts nothing: expects a scratch server (see README.md)
# on $PGHOST/$PGPORT, run as the postgres OS user or with PGUSER=postgres.
#
#   run.sh [-r ROWS] [-n REPEAT] [-o results.csv] [measurement ...]
#
# Each measurement: CREATE DATABASE ... TEMPLATE <variant template>, prewarm
# every relation, CHECKPOINT, then time the statement and diff
# pg_current_wal_lsn(); then check the outcome and drop the copy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=1000000
repeat=3
out=results.csv
while getopts r:n:o: opt; do
	case $opt in
	r) rows=$OPTARG ;;
	n) repeat=$OPTARG ;;
	o) out=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
: "${PGHOST:=/tmp/bench-design}" "${PGPORT:=54390}" "${PGUSER:=postgres}"
PGOPTIONS="-c client_min_messages=warning"
export PGHOST PGPORT PGUSER PGOPTIONS
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1)
PRED="status = 'closed' AND created_at < '2021-08-23 00:00:00+00'"

# name | template | how ("sql:<statement>" or "file:<script>")
declare -A TPL SQL
ORDER=()
def() { ORDER+=("$1"); TPL[$1]=$2; SQL[$1]=$3; }
def A          tpl_base      "sql:DELETE FROM contact WHERE $PRED"
def B_none     tpl_base      "sql:CALL job_b('none')"
def B_cast     tpl_base      "sql:CALL job_b('cast')"
def B_visible  tpl_base      "sql:CALL job_b('visible')"
def B_age      tpl_base      "sql:CALL job_b('age')"
def B_client   tpl_base      "file:$here/b_client.sql"
def C_none     tpl_base      "sql:CALL job_c('none')"
def C_age      tpl_base      "sql:CALL job_c('age')"
def B_age1     tpl_base      "sql:CALL job_b('age1')"
def C_fast_none tpl_base     "sql:CALL job_c('none', 10000, 'none', 'fast')"
def C_fast_age1 tpl_base     "sql:CALL job_c('age1', 10000, 'none', 'fast')"
def D          tpl_base      "sql:CALL job_d()"
def E          tpl_base      "sql:CALL job_e()"
def A_cascade  tpl_cascade   "sql:DELETE FROM contact WHERE $PRED"
def B_cascade  tpl_cascade   "sql:CALL job_b('age')"
def C_cascade  tpl_cascade   "sql:CALL job_c('age')"
def A_restrict0 tpl_restrict0 "sql:DELETE FROM contact WHERE $PRED"
def B_restrict0 tpl_restrict0 "sql:CALL job_b('age')"
def B_restrict_prefilter tpl_restrict "sql:CALL job_b('age', 10000, 'prefilter')"
def C_restrict_prefilter tpl_restrict "sql:CALL job_c('age', 10000, 'prefilter')"
def B_restrict_fallback_row tpl_restrict "sql:CALL job_b('age', 10000, 'fallback_row')"
def B_restrict_fallback_bisect tpl_restrict "sql:CALL job_b('age', 10000, 'fallback_bisect')"

[ $# -gt 0 ] && ORDER=("$@")

make_template() {
	local tpl=$1 variant=${1#tpl_}
	if [ "$("${PSQL[@]}" -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$tpl'")" = 1 ]; then
		# reuse the data, refresh the prototypes
		(cd "$here" && "${PSQL[@]}" -d "$tpl" -f procs.sql >/dev/null)
		return
	fi
	echo "building $tpl ($rows rows)" >&2
	"${PSQL[@]}" -d postgres -c "CREATE DATABASE $tpl"
	(cd "$here" && "${PSQL[@]}" -d "$tpl" -v rows="$rows" -v variant="$variant" -f setup.sql >/dev/null)
}

measure() {
	local name=$1 rep=$2 tpl=${TPL[$1]} how=${SQL[$1]}
	local db=m_design
	"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db TEMPLATE $tpl STRATEGY FILE_COPY"
	"${PSQL[@]}" -d $db -c "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'i', 't') AND n.nspname IN ('public', 'pg_toast') AND c.relpersistence = 'p'" >/dev/null
	"${PSQL[@]}" -d $db -c "CHECKPOINT"
	local lsn0 lsn1 t0 t1
	lsn0=$("${PSQL[@]}" -d $db -c "SELECT pg_current_wal_lsn()")
	t0=$(date +%s.%N)
	case $how in
	sql:*) "${PSQL[@]}" -d $db -c "${how#sql:}" >/dev/null ;;
	file:*) "${PSQL[@]}" -d $db -f "${how#file:}" >/dev/null ;;
	esac
	t1=$(date +%s.%N)
	lsn1=$("${PSQL[@]}" -d $db -c "SELECT pg_current_wal_lsn()")
	local wal left job fails
	wal=$("${PSQL[@]}" -d $db -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')::bigint")
	left=$("${PSQL[@]}" -d $db -c "SELECT count(*) FROM contact WHERE $PRED")
	job=$("${PSQL[@]}" -d $db -c "SELECT coalesce((SELECT format('cand=%s ok=%s fail=%s batches=%s', candidate_count, success_count, failure_count, batches) FROM bench_job WHERE id = 1), '-')")
	fails=$("${PSQL[@]}" -d $db -c "SELECT count(*) FROM bench_failure")
	"${PSQL[@]}" -d postgres -c "DROP DATABASE $db"
	local secs
	secs=$(echo "$t1 - $t0" | bc -l)
	printf '%s,%s,%.3f,%s,%s,%s,%s\n' "$name" "$rep" "$secs" "$wal" "$left" "$fails" "$job" | tee -a "$out"
}

[ -f "$out" ] || echo "name,rep,seconds,wal_bytes,candidates_left,failures,job" >"$out"
for name in "${ORDER[@]}"; do
	make_template "${TPL[$name]}"
done
# repetitions outermost, so that slow drift of the machine hits every
# variant alike; the naive loop E runs once
for rep in $(seq 1 "$repeat"); do
	for name in "${ORDER[@]}"; do
		if [ "$name" = E ] && [ "$rep" -gt 1 ]; then
			continue
		fi
		measure "$name" "$rep"
	done
done
