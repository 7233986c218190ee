/*-------------------------------------------------------------------------
 *
 * records_store.h
 *		Where the uploaded records of an id-list job are kept, in either
 *		layout: since 1.1 in chunks of keys (bulkdelete.record_chunk), with
 *		a bulkdelete.record row only for a record tried and not deleted; a
 *		job uploaded under 1.0 (or a database still at 1.0), one
 *		bulkdelete.record row per record.  records.c (uploads and results)
 *		and source_ids.c (the batches) go through this; it is the only code
 *		that touches those two tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_RECORDS_STORE_H
#define BULKDELETE_RECORDS_STORE_H

#include "compat.h"

#include "keys.h"

/* The most records one record_chunk row holds */
#define BD_RECORD_CHUNK_KEYS 10000

/* Reading one job's records, from batch to batch (a source's state) */
typedef struct BdRecords BdRecords;

/* Some consecutive records of a job, read for a batch */
typedef struct BdRecordBatch
{
	int			first_seq;		/* the number of the first */
	int			n;
	Jsonb	  **keys;			/* 1.0 layout: each record's stored key */
	char	  **texts;			/* chunks: n * ncols key texts, in the key's
								 * column order */
} BdRecordBatch;

/* What a results function lists, in upload order */
typedef enum BdRecordsList
{
	BD_RECORDS_DELETED,			/* tried and deleted: key */
	BD_RECORDS_FAILED,			/* tried and not deleted: key, sqlstate,
								 * message */
	BD_RECORDS_UNTRIED			/* at the job's position and after: key */
} BdRecordsList;

/* One row of a list: one or three columns */
typedef void (*BdRecordEmit) (Datum *values, bool *nulls, void *arg);

extern int64 bd_records_append(int64 job_id, BdKeyInfo *info, Datum *values,
							   int n);
extern int64 bd_records_count(int64 job_id);
extern bool bd_records_lost(int64 job_id);

extern BdRecords *bd_records_open(int64 job_id, MemoryContext cxt);
extern bool bd_records_chunked(BdRecords *recs);
extern bool bd_records_read(BdRecords *recs, BdKeyInfo *info, int from,
							int limit, BdRecordBatch *batch);
extern BdKeySet *bd_records_parse(BdRecordBatch *batch, BdKeyInfo *info);
extern char **bd_records_key_texts(BdRecordBatch *batch, BdKeySet *set);
extern void bd_records_store_outcomes(BdRecords *recs, BdRecordBatch *batch,
									  BdKeySet *set, char **key_texts);
extern void bd_records_list(BdRecords *recs, BdRecordsList what,
							int position, BdRecordEmit emit, void *arg);

#endif							/* BULKDELETE_RECORDS_STORE_H */
