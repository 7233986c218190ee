/*-------------------------------------------------------------------------
 *
 * pace.h
 *		Pacing a job (pace.c): how much the next batch may take and how long
 *		to wait after it, by the row throttle, by other sessions' writes and
 *		by the standbys' replay; and the accounting of the transaction ids
 *		that processes running jobs take, which tells other sessions' writes
 *		from jobs'.
 *
 *		A batch counts in "units": whatever the caller takes at a time
 *		(chunks of candidates, or records of an id-list job).  The caller
 *		says how many rows a unit holds when it knows (a TID list, a record),
 *		or 0 when the pace must learn it (a block range).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_PACE_H
#define BULKDELETE_PACE_H

#include "compat.h"

typedef struct BdPace BdPace;

/* the processes that run jobs (a job worker, CALL bulkdelete.run) */
extern void bd_pace_install(void);
extern void bd_pace_register_process(void);
extern void bd_pace_unregister_process(void);

/* one job's pacing; palloc'd in the current memory context */
extern BdPace *bd_pace_create(int batch_time, int max_rows_per_second,
							  int busy_wal_rate);
extern void bd_pace_new_query(BdPace *pace);
extern void bd_pace_batch_begin(BdPace *pace);
extern bool bd_pace_yielding(BdPace *pace);
extern int	bd_pace_batch_limit(BdPace *pace, int units, double rows_per_unit);
extern bool bd_pace_batch_cut(BdPace *pace);
extern void bd_pace_batch_end(BdPace *pace, int units, int64 rows);
extern long bd_pace_delay(BdPace *pace);
extern long bd_pace_standby_lag(BdPace *pace);
extern void bd_pace_standby_waited(BdPace *pace, long ms);
extern void bd_pace_report(BdPace *pace, int64 job_id);

#endif							/* BULKDELETE_PACE_H */
