/*-------------------------------------------------------------------------
 *
 * fkeys.c
 *		The foreign keys that reference a relation (pg_constraint), for
 *		preview's cascade tree and the archive's capture, and the SQL of a
 *		key's match between a referenced and a referencing row.
 *
 *-------------------------------------------------------------------------
 */
#include "fkeys.h"

#include "query.h"
#include "spi_util.h"

#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

/*
 * The foreign keys that reference relid or, for a partition, one of its
 * ancestors (a key referencing a partitioned table is recorded once, on
 * it), in name order.  Must be connected to SPI.
 */
List *
bd_fkeys_referencing(Oid relid)
{
	List	   *ancestors = get_rel_relispartition(relid) ?
	get_partition_ancestors(relid) : NIL;
	int			n = 1 + list_length(ancestors);
	Datum	   *oids = palloc(sizeof(Datum) * n);
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1];
	List	   *result = NIL;
	BdFkey *fk = NULL;
	ListCell   *lc;
	uint64		rows;
	int			i = 0;

	oids[i++] = ObjectIdGetDatum(relid);
	foreach(lc, ancestors)
		oids[i++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));
	rows = bd_spi_exec("SELECT c.oid, c.conname::pg_catalog.text, c.conrelid,"
					   " c.confrelid, c.confdeltype::pg_catalog.text,"
					   " k.fk, k.pk, k.op"
					   " FROM pg_catalog.pg_constraint c,"
					   " LATERAL ROWS FROM (pg_catalog.unnest(c.conkey),"
					   "   pg_catalog.unnest(c.confkey), pg_catalog.unnest(c.conpfeqop))"
					   "   WITH ORDINALITY AS k(fk, pk, op, n)"
					   " WHERE c.contype OPERATOR(pg_catalog.=) 'f'"
					   " AND c.conparentid OPERATOR(pg_catalog.=) 0"
					   " AND c.confrelid OPERATOR(pg_catalog.=) ANY ($1)"
					   " ORDER BY c.conname, c.oid, k.n",
					   1, argtypes, values, NULL, true, SPI_OK_SELECT);
	for (uint64 r = 0; r < rows; r++)
	{
		bool		isnull;
		Oid			oid = DatumGetObjectId(bd_spi_datum(r, 1, &isnull));

		if (fk == NULL || fk->oid != oid)
		{
			fk = palloc0(sizeof(BdFkey));
			fk->oid = oid;
			fk->name = bd_spi_text(r, 2);
			fk->conrelid = DatumGetObjectId(bd_spi_datum(r, 3, &isnull));
			fk->confrelid = DatumGetObjectId(bd_spi_datum(r, 4, &isnull));
			fk->deltype = bd_spi_text(r, 5)[0];
			result = lappend(result, fk);
		}
		if (fk->nkeys == INDEX_MAX_KEYS)
			elog(ERROR, "foreign key \"%s\" has too many columns",
				 fk->name);
		fk->fk[fk->nkeys] = (AttrNumber) bd_spi_int64(r, 6, 0);
		fk->pk[fk->nkeys] = (AttrNumber) bd_spi_int64(r, 7, 0);
		fk->op[fk->nkeys] = DatumGetObjectId(bd_spi_datum(r, 8, &isnull));
		fk->nkeys++;
	}
	return result;
}

/*
 * "pk_alias.pk1 OP1 fk_alias.fk1 AND ...": the foreign key's match between
 * a row of the referenced relation and a row of the referencing one.  The
 * key columns are named as in the referenced relation the key was declared
 * on; a partition of it has the same column names, if not the same numbers.
 */
char *
bd_fkey_match(BdFkey *fk, const char *pk_alias, const char *fk_alias)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%s%s.%s %s %s.%s", i > 0 ? " AND " : "",
						 pk_alias,
						 bd_query_column_name(fk->confrelid, fk->pk[i], NULL, "",
											  NULL, NULL),
						 bd_query_operator_text(fk->op[i]), fk_alias,
						 bd_query_column_name(fk->conrelid, fk->fk[i], NULL, "",
											  NULL, NULL));
	return buf.data;
}
