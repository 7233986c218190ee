/*-------------------------------------------------------------------------
 *
 * candidates.h
 *		Fixing a job's candidate set at its start.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_CANDIDATES_H
#define BULKDELETE_CANDIDATES_H

#include "compat.h"

#include "job.h"

/* rows per stored chunk of candidates */
#define BD_CHUNK_ROWS 512
/*
 * blocks per stored chunk of a range-mode query: small, so that a job that
 * yields to other writers can take small steps (worker.c)
 */
#define BD_RANGE_BLOCKS 8
/* most block-range chunks in one batch (1024 blocks, 8 MB) */
#define BD_RANGE_MAX_CHUNKS (1024 / BD_RANGE_BLOCKS)
/* most TID-list chunks in one batch (65,536 rows) */
#define BD_TID_MAX_CHUNKS 128
/*
 * most rows (planner's estimate) of a self-contained query that is fixed
 * through its index plan as a TID list rather than walked as block ranges:
 * 16 chunks, within the first batch of the default batch_size
 */
#define BD_SMALL_ROWS (16 * BD_CHUNK_ROWS)
/*
 * least blocks (8 MB) of a range-mode query whose count runs beside the
 * batches (count.c): below, the count costs less than starting the counter
 * (a few ms), so the start counts itself
 */
#define BD_COUNT_BESIDE_BLOCKS 1024

extern int64 bd_candidates_fix(BdJob *job);
extern int	bd_candidates_gucs(bool index_scans);
extern void bd_candidates_cutoff(FullTransactionId *cutoff_xmax,
								 ArrayType **cutoff_xip);

#endif							/* BULKDELETE_CANDIDATES_H */
