/*-------------------------------------------------------------------------
 *
 * job_fixed.c
 *		What a query job fixed at its start besides its candidates (1.1):
 *		the values of the non-row parts of its queries' conditions (now(),
 *		an uncorrelated subquery, the keys of a link: query.h's
 *		BdQueryFixed), stored in bulkdelete.fixed_value as text, in chunks
 *		of at most BD_FIXED_CHUNK_KEYS items, so that every batch and every
 *		resume binds the same values and none is ever evaluated again; and
 *		the way each query's candidates were fixed (operation.query_modes).
 *		Part of the job family (job.h).  A database still on the 1.0 SQL has
 *		neither: its jobs fix nothing (bd_job_can_fix).
 *
 *-------------------------------------------------------------------------
 */
#include "job.h"
#include "job_internal.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

/* Has the database the 1.1 SQL of fixed values? */
bool
bd_job_can_fix(void)
{
	return job_has_column("query_modes");
}

/* Store one chunk of fixed part param of query query_index (items: text[]) */
void
bd_job_store_fixed(int64 job_id, int query_index, int param, int chunk,
				   ArrayType *items)
{
	Oid			argtypes[5] = {INT8OID, INT4OID, INT4OID, INT4OID, TEXTARRAYOID};
	Datum		values[5];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(param);
	values[3] = Int32GetDatum(chunk);
	values[4] = PointerGetDatum(items);
	job_write("INSERT INTO bulkdelete.fixed_value"
			  " (operation_id, query_index, param, chunk, items)"
			  " VALUES ($1, $2, $3, $4, $5)",
			  5, argtypes, values, NULL, SPI_OK_INSERT);
}

/* Forget what query query_index fixed (it keeps the TID mode after all) */
void
bd_job_drop_fixed(int64 job_id, int query_index)
{
	job_write_id(psprintf("DELETE FROM bulkdelete.fixed_value"
						  " WHERE operation_id = $1 AND query_index = %d",
						  query_index),
				 job_id, InvalidOid, (Datum) 0, SPI_OK_DELETE);
}

/* job_read's reader: the items of a chunk appended to a List of char * */
static void
job_read_items(uint64 row, void *arg)
{
	List	  **items = (List **) arg;
	bool		isnull;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(bd_spi_datum(row, 1, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		*items = lappend(*items, nulls[i] ? NULL : TextDatumGetCString(elems[i]));
}

/*
 * The stored items of fixed part param of query query_index, in order, as a
 * List of char * (NULL for a null), palloc'd in the caller's context; *found
 * says whether anything was stored for it.
 */
List *
bd_job_fetch_fixed(int64 job_id, int query_index, int param, bool *found)
{
	Oid			argtypes[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3];
	List	   *items = NIL;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(param);
	*found = job_read("SELECT items FROM bulkdelete.fixed_value"
					  " WHERE operation_id = $1 AND query_index = $2 AND param = $3"
					  " ORDER BY chunk",
					  3, argtypes, values, NULL, true, job_read_items,
					  &items) > 0;
	return items;
}

/* Did query query_index of the job fix anything at the start? */
bool
bd_job_has_fixed(int64 job_id, int query_index)
{
	if (!bd_job_can_fix())
		return false;
	return bd_job_test(psprintf("SELECT EXISTS (SELECT 1 FROM bulkdelete.fixed_value"
								" WHERE operation_id = $1 AND query_index = %d)",
								query_index),
					   job_id);
}

/* Record how each query's candidates were fixed ('range' or 'tid') */
void
bd_job_set_modes(int64 job_id, ArrayType *modes)
{
	if (!bd_job_can_fix())
		return;
	job_write_id("UPDATE bulkdelete.operation SET query_modes = $2 WHERE id = $1",
				 job_id, TEXTARRAYOID, PointerGetDatum(modes), SPI_OK_UPDATE);
}
