/*-------------------------------------------------------------------------
 *
 * archive.c
 *		The recycle bin's capture (SPEC 8): every row an archived job's
 *		DELETE removes, and every row its foreign-key actions remove
 *		(CASCADE) or change (SET NULL, SET DEFAULT), written to
 *		bulkdelete.archive in the same subtransaction as the DELETE.  A row
 *		that fails (isolate.c rolls its subtransaction back) leaves no
 *		archive row; a crash loses a batch's deletes and its archive rows
 *		together.  Also purging a job's archive and the workers' expiry.
 *
 *		Three ways, chosen per attempt:
 *
 *		- No foreign key with an action references the relation: the DELETE
 *		  gets "RETURNING <key>, t.c1, t.c2, ...", the rows exactly as
 *		  deleted, column by column (no whole-row value is built only to be
 *		  taken apart again).
 *
 *		- Keys with actions reference it, and every relation of the tree
 *		  has what archive_cascade.c needs (an index on each key's
 *		  referencing columns, plain tables, keys built in C): the same
 *		  RETURNING, with each row's leaf and TID, and after the DELETE the
 *		  rows its actions removed or changed, found as the versions the
 *		  attempt deleted or updated (bd_archive_capture_cascaded).
 *
 *		- Otherwise the rows are locked first (their TIDs read as the job's
 *		  owner with the DELETE's own condition, then locked FOR UPDATE as
 *		  the tables' owner, as a row's foreign-key actions run), and, one
 *		  level at a time, the referencing rows of the rows captured so far
 *		  are read and locked through each key's own equality operators.
 *		  Locking a level before reading the next keeps a concurrent insert
 *		  of a referencing row out (its foreign-key check waits for our
 *		  lock), so the DELETE's actions remove exactly the rows captured.
 *		  After the DELETE, the relations whose deleted and updated counts
 *		  (the transaction's statistics) differ from what was captured (a
 *		  trigger kept a row) are checked row by row: a captured row still
 *		  there at its TID is not archived.
 *
 *		Either capture after or around the DELETE records, for each SET
 *		NULL / SET DEFAULT row, the XID of the action's update, the xmin of
 *		the version it wrote (archive.changed_by; bd_archive_changed_by
 *		reads it at the locked row's TID after the DELETE), by which a
 *		restore re-links that version of a table without a primary key
 *		(source_restore.c).
 *
 *		Rows are written as they are taken into their chunk (one archive
 *		row per relation, depth and action): the key and image of each go
 *		straight into two buffers laid out as the chunk's jsonb[] and
 *		bytea[] arrays (ArChunk), which become the arrays without a copy,
 *		compressed here (ar_compressed) when they will be stored out of line,
 *		and the chunk is inserted by a plan kept for the backend.
 *
 *		A row image is the row's composite datum, formed from its values
 *		(archive_image.c: binary, every type exactly, toasted values
 *		fetched into it; the chunk keeps the layout it was written with).
 *		The key is the primary key as jsonb, written in C from the row
 *		straight into the chunk when its columns are integers or text
 *		(ar_key_append), else by the capture statement under fixed settings
 *		(bd_archive_settings_begin: TimeZone UTC, ...); for a table without
 *		one the whole row as jsonb.
 *
 *-------------------------------------------------------------------------
 */
#include "archive_internal.h"
#include "archive_image.h"

#include "batch.h"
#include "fkeys.h"
#include "job.h"
#include "query.h"
#include "spi_util.h"

#include "access/heaptoast.h"
#include "access/toast_compression.h"
#include "access/toast_internals.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "executor/tuptable.h"
#include "nodes/params.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

BdArchive *
bd_archive_create(int64 job_id, Oid relid, Interval *retention,
				  MemoryContext cxt)
{
	BdArchive  *ar = MemoryContextAllocZero(cxt, sizeof(BdArchive));

	if (!bd_archive_installed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot archive: the extension's SQL objects are those of version 1.0",
						job_id),
				 errhint("Run ALTER EXTENSION bulkdelete UPDATE.")));
	ar->job_id = job_id;
	ar->relid = relid;
	ar->retention = MemoryContextAlloc(cxt, sizeof(Interval));
	*ar->retention = *retention;
	return ar;
}

/* Is bulkdelete.archive there (not a database still on 1.0's SQL)? */
bool
bd_archive_installed(void)
{
	Oid			nspid = get_namespace_oid("bulkdelete", true);

	return OidIsValid(nspid) && OidIsValid(get_relname_relid("archive", nspid));
}

/*
 * Fixed settings for writing and reading row images, in a GUC nest level
 * of their own: bd_archive_settings_end(level) restores the caller's.
 * In a transaction.
 */
int
bd_archive_settings_begin(void)
{
	static const char *const settings[][2] = {
		{"DateStyle", "ISO, YMD"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"extra_float_digits", "1"},
		{"bytea_output", "hex"},
		{"lc_monetary", "C"},
	};
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	return level;
}

void
bd_archive_settings_end(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/* The key of row "alias" of relid: its primary key, else the whole row */
char *
bd_archive_key_sql(Oid relid, const char *alias)
{
	return bd_batch_key_sql(relid, alias,
							psprintf("pg_catalog.to_jsonb(%s.*)", alias));
}

/*
 * The columns of row "alias" of relid, every one not dropped in attribute
 * order ("alias.c1, alias.c2, ..."): a capture statement's row
 * (ArTake); *n their number, when n is not NULL.
 */
static char *
ar_row_columns(Oid relid, const char *alias, int *n)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData buf;
	int			k = 0;

	initStringInfo(&buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&buf, "%s%s.%s", k++ > 0 ? ", " : "", alias,
						 quote_identifier(NameStr(att->attname)));
	}
	relation_close(rel, AccessShareLock);
	if (n)
		*n = k;
	return buf.data;
}

/* "ONLY rel" for a plain table, "rel" for a partitioned one */
static char *
ar_from(Oid relid)
{
	return psprintf("%s%s", get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
					"" : "ONLY ", bd_qualified_relname(relid));
}

/* A new row slot; the caller fills it */
static ArRow *
ar_new_row(BdArchive *ar)
{
	if (ar->n == ar->max)
	{
		ar->max = ar->max == 0 ? Max(64, ar->sized.rows) : ar->max * 2;
		ar->rows = ar->rows == NULL ?
			palloc_extended(sizeof(ArRow) * ar->max, MCXT_ALLOC_HUGE) :
			repalloc_huge(ar->rows, sizeof(ArRow) * ar->max);
	}
	memset(&ar->rows[ar->n], 0, sizeof(ArRow));
	return &ar->rows[ar->n++];
}

/*
 * A key built in C from the row (ar_key_plan): a primary key of integer
 * and text columns only, written straight into the chunk's keys buffer as
 * the bytes jsonb_build_object of its columns gives (convertJsonbObject's
 * layout: the object's header, the JEntries of its keys then of its
 * values, the keys, the values), without the per-row output to text and
 * numeric_in that jsonb_build_object does for an integer, its expression
 * evaluation, or a JsonbValue tree and a Jsonb datum copied afterwards.
 * Everything but the values is the same for every row: head, formed once.
 */
struct ArKeyPlan
{
	int			nkeys;
	AttrNumber *attnums;		/* in the object's key order (jsonb's: */
	Oid		   *types;			/* shorter first, then bytewise) */
	char	   *head;			/* the object's header, its JEntries (those
								 * of the values zero) and keys */
	int			headlen;
	uint32		keyslen;		/* the keys' bytes */
};

/* Jsonb's order of object keys (lengthCompareJsonbString) */
static int
ar_key_name_cmp(const void *a, const void *b)
{
	const char *na = *(const char *const *) a;
	const char *nb = *(const char *const *) b;
	size_t		la = strlen(na);
	size_t		lb = strlen(nb);

	if (la != lb)
		return la > lb ? 1 : -1;
	return memcmp(na, nb, la);
}

/*
 * The key plan of relid, or NULL when its key is not built in C (no
 * primary key, or a key column of another type): then the capture
 * statement computes it (bd_archive_key_sql).
 */
static ArKeyPlan *
ar_key_plan(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Oid			pk_index = RelationGetPrimaryKeyIndex(rel);
	ArKeyPlan  *plan;
	HeapTuple	tup;
	Form_pg_index idx;
	char	  **names;
	StringInfoData head;
	uint32		header;

	relation_close(rel, AccessShareLock);
	if (!OidIsValid(pk_index))
		return NULL;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk_index));
	if (!HeapTupleIsValid(tup))
		return NULL;
	idx = (Form_pg_index) GETSTRUCT(tup);
	plan = palloc(sizeof(ArKeyPlan));
	plan->nkeys = idx->indnkeyatts;
	plan->attnums = palloc(sizeof(AttrNumber) * plan->nkeys);
	plan->types = palloc(sizeof(Oid) * plan->nkeys);
	names = palloc(sizeof(char *) * plan->nkeys);
	for (int i = 0; i < plan->nkeys; i++)
	{
		AttrNumber	att = idx->indkey.values[i];
		Oid			type = att > 0 ? get_atttype(relid, att) : InvalidOid;

		if (type != INT2OID && type != INT4OID && type != INT8OID &&
			type != TEXTOID && type != VARCHAROID)
		{
			ReleaseSysCache(tup);
			return NULL;
		}
		names[i] = get_attname(relid, att, false);
	}
	ReleaseSysCache(tup);

	/* the key order of the object; a key's column found by its name */
	qsort(names, plan->nkeys, sizeof(char *), ar_key_name_cmp);
	for (int i = 0; i < plan->nkeys; i++)
	{
		plan->attnums[i] = get_attnum(relid, names[i]);
		plan->types[i] = get_atttype(relid, plan->attnums[i]);
	}

	/* the header, 2 * nkeys JEntries, the keys */
	initStringInfo(&head);
	header = plan->nkeys | JB_FOBJECT;
	appendBinaryStringInfo(&head, (char *) &header, sizeof(uint32));
	plan->keyslen = 0;
	for (int i = 0; i < plan->nkeys; i++)
	{
		JEntry		meta = strlen(names[i]);

		plan->keyslen += meta;
		/* every JB_OFFSET_STRIDE'th length an offset, as jsonb has it */
		if (i % JB_OFFSET_STRIDE == 0)
			meta = plan->keyslen | JENTRY_HAS_OFF;
		appendBinaryStringInfo(&head, (char *) &meta, sizeof(JEntry));
	}
	for (int i = 0; i < plan->nkeys; i++)
	{
		JEntry		meta = 0;

		appendBinaryStringInfo(&head, (char *) &meta, sizeof(JEntry));
	}
	for (int i = 0; i < plan->nkeys; i++)
		appendBinaryStringInfoNT(&head, names[i], strlen(names[i]));
	plan->head = head.data;
	plan->headlen = head.len;
	return plan;
}

/* The key column of a capture statement of relid's rows (alias) */
static char *
ar_key_sql(Oid relid, const char *alias)
{
	if (ar_key_plan(relid) != NULL)
		return pstrdup("NULL::pg_catalog.jsonb");
	return bd_archive_key_sql(relid, alias);
}

/* Is the key of relid's rows built in C from the row (no statement's)? */
bool
bd_archive_key_in_c(Oid relid)
{
	return ar_key_plan(relid) != NULL;
}

/* Is deltype a foreign-key action the archive captures? */
bool
bd_archive_action(char deltype)
{
	return deltype == 'c' || deltype == 'n' || deltype == 'd';
}

/*
 * The columns of relid that the foreign keys with an action referencing
 * it (declared on relid itself) match: kept with each row taken, for
 * bd_archive_capture_cascaded.  Connected to SPI.
 */
AttrNumber *
bd_archive_referenced_atts(Oid relid, int *n)
{
	List	   *fkeys = bd_fkeys_referencing(relid);
	ListCell   *lc;
	AttrNumber *atts = palloc(sizeof(AttrNumber) * (INDEX_MAX_KEYS * list_length(fkeys) + 1));

	*n = 0;
	foreach(lc, fkeys)
	{
		BdFkey	   *fk = lfirst(lc);

		if (!bd_archive_action(fk->deltype) || fk->confrelid != relid)
			continue;
		for (int i = 0; i < fk->nkeys; i++)
		{
			int			j;

			for (j = 0; j < *n; j++)
				if (atts[j] == fk->pk[i])
					break;
			if (j == *n)
				atts[(*n)++] = fk->pk[i];
		}
	}
	return atts;
}

/*
 * Start taking rows of relid (see ArTake for a statement's columns): the
 * key settings, the row type, the key plan, the referenced columns to keep
 * with each row when refs, and a scratch context for the values fetched
 * from TOAST, so that a batch's rows reuse one block instead of each
 * taking fresh pages.  Connected to SPI.
 */
void
bd_archive_take_begin(ArTake *tk, BdArchive *ar, Oid relid, int loccol,
					  int keycol, bool level, char action,
					  const char *changed, bool refs)
{
	tk->ar = ar;
	tk->relid = relid;
	tk->loccol = loccol;
	tk->keycol = keycol;
	tk->level = level;
	tk->action = action;
	tk->changed = changed;
	tk->taken = 0;
	tk->cxt = ar->cxt;
	tk->scratch = AllocSetContextCreate(tk->cxt, "bulkdelete archive image",
										ALLOCSET_DEFAULT_SIZES);
	tk->nest = bd_archive_settings_begin();
	tk->key = ar_key_plan(relid);
	tk->nref = 0;
	tk->refatts = refs ? bd_archive_referenced_atts(relid, &tk->nref) : NULL;
	tk->rowdesc = lookup_rowtype_tupdesc(get_rel_type_id(relid), -1);
	tk->imgdesc = tk->rowdesc;
	tk->astext = palloc0(sizeof(FmgrInfo) * (tk->rowdesc->natts + 1));
	for (int i = 0; i < tk->rowdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tk->rowdesc, i);
		Oid			out;
		bool		varlena;

		if (att->attisdropped || !bd_image_type_as_text(att->atttypid))
			continue;
		if (tk->imgdesc == tk->rowdesc)
		{
			/* an anonymous record: not the row type's layout */
			tk->imgdesc = CreateTupleDescCopy(tk->rowdesc);
			tk->imgdesc->tdtypeid = RECORDOID;
			tk->imgdesc->tdtypmod = -1;
		}
		TupleDescInitEntry(tk->imgdesc, i + 1, NameStr(att->attname), TEXTOID,
						   -1, 0);
		getTypeOutputInfo(att->atttypid, &out, &varlena);
		fmgr_info_cxt(out, &tk->astext[i], tk->cxt);
	}
	tk->rowvalues = palloc(sizeof(Datum) * (tk->rowdesc->natts + 1));
	tk->rownulls = palloc(sizeof(bool) * (tk->rowdesc->natts + 1));
}

void
bd_archive_take_end(ArTake *tk)
{
	bd_archive_settings_end(tk->nest);
	MemoryContextDelete(tk->scratch);
	ReleaseTupleDesc(tk->rowdesc);
}

/* An empty chunk buffer: room for the array's header, zeroed */
static void
ar_chunk_buffer(StringInfo buf)
{
	initStringInfo(buf);
	enlargeStringInfo(buf, ARR_OVERHEAD_NONULLS(1));
	memset(buf->data, 0, ARR_OVERHEAD_NONULLS(1));
	buf->len = ARR_OVERHEAD_NONULLS(1);
}

/*
 * Start an element in a chunk buffer: padding to an int boundary (zeros,
 * as construct_array leaves them) and room for its 4-byte header.
 * Returns its offset; ar_element_end sets its length.
 */
static int
ar_element_begin(StringInfo buf)
{
	int			off = INTALIGN(buf->len);

	enlargeStringInfo(buf, off - buf->len + VARHDRSZ);
	memset(buf->data + buf->len, 0, off - buf->len + VARHDRSZ);
	buf->len = off + VARHDRSZ;
	return off;
}

static void
ar_element_end(StringInfo buf, int off)
{
	SET_VARSIZE(buf->data + off, buf->len - off);
}

/* Append a varlena (a 4-byte header, not toasted) to a chunk buffer */
static int
ar_element_append(StringInfo buf, struct varlena *v)
{
	int			off = ar_element_begin(buf);

	appendBinaryStringInfo(buf, VARDATA(v), VARSIZE(v) - VARHDRSZ);
	ar_element_end(buf, off);
	return off;
}

/*
 * Append an integer to buf as int64_to_numeric gives it: a short-format
 * numeric (its 4-byte header, n_header, base-10000 digits, trailing zero
 * digits stripped, dscale 0; zero has no digits), without its three
 * palloc'd NumericVar buffers.  Returns its length.
 */
static int
ar_numeric_append(StringInfo buf, int64 val)
{
	uint64		u = val < 0 ? -(uint64) val : (uint64) val;
	int16		digits[5];		/* 2^64 < 10000^5 */
	int			ndigits = 0;
	int			weight;
	int			first;
	int			len;
	uint16		header;

	/* the digits, least significant first */
	while (u != 0)
	{
		digits[ndigits++] = (int16) (u % 10000);	/* numeric.c's NBASE */
		u /= 10000;
	}
	weight = ndigits > 0 ? ndigits - 1 : 0;
	/* trailing zero digits (the least significant ones) are not stored */
	for (first = 0; first < ndigits && digits[first] == 0; first++)
		;
	/* NUMERIC_SHORT, its sign bit, dscale 0, a weight of 0 to 4 */
	header = 0x8000 | (val < 0 ? 0x2000 : 0) | (uint16) weight;
	len = VARHDRSZ + sizeof(uint16) + sizeof(int16) * (ndigits - first);
	enlargeStringInfo(buf, len);
	SET_VARSIZE(buf->data + buf->len, len);
	memcpy(buf->data + buf->len + VARHDRSZ, &header, sizeof(uint16));
	for (int i = ndigits - 1, k = 0; i >= first; i--, k++)
		memcpy(buf->data + buf->len + VARHDRSZ + sizeof(uint16) + sizeof(int16) * k,
			   &digits[i], sizeof(int16));
	buf->len += len;
	return len;
}

/*
 * Append the key of a row (its columns values/nulls, by attribute number
 * from 1) by plan to a chunk's keys buffer as one jsonb element; returns
 * its offset.  A text value stored out of line or compressed is fetched
 * into the current memory context.
 */
static int
ar_key_append(StringInfo buf, ArKeyPlan *plan, Datum *values, bool *nulls)
{
	int			off = ar_element_begin(buf);
	/* the JEntries of the values, after the header and the keys' */
	int			jentries = buf->len + sizeof(uint32) + sizeof(JEntry) * plan->nkeys;
	uint32		totallen = plan->keyslen;

	appendBinaryStringInfoNT(buf, plan->head, plan->headlen);
	for (int i = 0; i < plan->nkeys; i++)
	{
		int			a = plan->attnums[i] - 1;
		JEntry		meta;

		if (nulls[a])
			meta = JENTRY_ISNULL;	/* not in a primary key; as SQL would */
		else if (plan->types[i] == TEXTOID || plan->types[i] == VARCHAROID)
		{
			text	   *t = DatumGetTextPP(values[a]);

			if (VARSIZE_ANY_EXHDR(t) > JENTRY_OFFLENMASK)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("string too long to represent as jsonb string")));
			meta = VARSIZE_ANY_EXHDR(t);
			appendBinaryStringInfoNT(buf, VARDATA_ANY(t), meta);
		}
		else
		{
			int64		v = plan->types[i] == INT2OID ? DatumGetInt16(values[a]) :
				plan->types[i] == INT4OID ? DatumGetInt32(values[a]) :
				DatumGetInt64(values[a]);
			int			pad = INTALIGN(buf->len - off) - (buf->len - off);

			/* int-aligned in the jsonb, the padding its own (padBufferToInt) */
			appendBinaryStringInfoNT(buf, "\0\0\0", pad);
			meta = JENTRY_ISNUMERIC | (pad + ar_numeric_append(buf, v));
		}
		totallen += JBE_OFFLENFLD(meta);
		if (totallen > JENTRY_OFFLENMASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("total size of jsonb object elements exceeds the maximum of %u bytes",
							JENTRY_OFFLENMASK)));
		if ((i + plan->nkeys) % JB_OFFSET_STRIDE == 0)
			meta = (meta & JENTRY_TYPEMASK) | totallen | JENTRY_HAS_OFF;
		memcpy(buf->data + jentries + sizeof(JEntry) * i, &meta, sizeof(JEntry));
	}
	ar_element_end(buf, off);
	return off;
}

/*
 * The chunk of rows of relid at depth with action (and changed columns):
 * its index in ar->chunks, created when new.
 */
static int
ar_chunk_of(BdArchive *ar, Oid relid, int depth, char action,
			const char *changed)
{
	MemoryContext old;
	ArChunk    *c;

	for (int k = 0; k < ar->nchunks; k++)
	{
		int			i = (ar->lastchunk + k) % ar->nchunks;

		c = &ar->chunks[i];
		if (c->relid == relid && c->depth == depth && c->action == action &&
			(c->changed == changed ||
			 (c->changed && changed && strcmp(c->changed, changed) == 0)))
			return ar->lastchunk = i;
	}
	old = MemoryContextSwitchTo(ar->cxt);
	if (ar->nchunks == ar->maxchunks)
	{
		ar->maxchunks = Max(8, ar->maxchunks * 2);
		ar->chunks = ar->chunks == NULL ? palloc(sizeof(ArChunk) * ar->maxchunks) :
			repalloc(ar->chunks, sizeof(ArChunk) * ar->maxchunks);
	}
	c = &ar->chunks[ar->nchunks];
	memset(c, 0, sizeof(ArChunk));
	c->relid = relid;
	c->depth = depth;
	c->action = action;
	c->changed = changed;
	ar_chunk_buffer(&c->keys);
	ar_chunk_buffer(&c->images);
	if (ar->nchunks == 0)
	{
		/* as big as the last attempt's first chunk: no regrowing */
		enlargeStringInfo(&c->keys, Min(ar->sized.keys, MaxAllocSize / 2));
		enlargeStringInfo(&c->images, Min(ar->sized.images, MaxAllocSize / 2));
		c->maxrows = ar->sized.rows;
		c->rows = c->maxrows > 0 ?
			palloc_extended(sizeof(int) * c->maxrows, MCXT_ALLOC_HUGE) : NULL;
	}
	MemoryContextSwitchTo(old);
	return ar->lastchunk = ar->nchunks++;
}

/*
 * Take one row of tk's relation, deformed into tk->rowvalues/rownulls:
 * its key (built in C, else sqlkey, the statement's) and image go straight
 * into its chunk, the referenced columns tk keeps with the row.  ctid (of
 * leaf tableoid), when not NULL, is where the row was: a row already taken
 * is left out (returns false).  parent is the index of the row it was
 * reached from, or -1 for a row the job deleted.
 */
bool
bd_archive_take_deformed(ArTake *tk, Oid tableoid, ItemPointer ctid,
						 int parent, Datum sqlkey)
{
	BdArchive  *ar = tk->ar;
	MemoryContext old = MemoryContextSwitchTo(tk->cxt);
	ArRow	   *r;
	ArChunk    *c;
	int			index;

	if (ctid != NULL && ar->seen != NULL)
	{
		ArSeen		seen;
		bool		found;

		memset(&seen, 0, sizeof(seen));
		seen.tableoid = tableoid;
		seen.ctid = *ctid;
		(void) hash_search(ar->seen, &seen, HASH_ENTER, &found);
		if (found)
		{
			MemoryContextSwitchTo(old);
			return false;
		}
	}
	r = ar_new_row(ar);
	index = ar->n - 1;
	r->relid = tk->relid;
	r->tableoid = tableoid;
	if (ctid != NULL)
		r->ctid = *ctid;
	else
		ItemPointerSetInvalid(&r->ctid);
	r->action = tk->action;
	if (parent >= 0)
	{
		r->depth = ar->rows[parent].depth + 1;
		r->root = ar->rows[parent].root;
	}
	else
		r->root = index;
	r->chunk = ar_chunk_of(ar, tk->relid, r->depth, tk->action, tk->changed);
	c = &ar->chunks[r->chunk];
	if (c->n == c->maxrows)
	{
		c->maxrows = Max(64, c->maxrows * 2);
		c->rows = c->rows == NULL ? palloc(sizeof(int) * c->maxrows) :
			repalloc_huge(c->rows, sizeof(int) * c->maxrows);
	}
	c->rows[c->n++] = index;
	if (tk->nref > 0)
	{
		r->refvals = palloc(sizeof(Datum) * tk->nref);
		r->refnulls = palloc(sizeof(bool) * tk->nref);
		for (int i = 0; i < tk->nref; i++)
		{
			int			a = tk->refatts[i] - 1;
			Form_pg_attribute att = TupleDescAttr(tk->rowdesc, a);

			r->refnulls[i] = tk->rownulls[a];
			r->refvals[i] = r->refnulls[i] ? (Datum) 0 :
				datumCopy(tk->rowvalues[a], att->attbyval, att->attlen);
		}
	}
	MemoryContextSwitchTo(tk->scratch);
	if (tk->key)
		r->keyoff = ar_key_append(&c->keys, tk->key, tk->rowvalues,
								  tk->rownulls);
	else
		r->keyoff = ar_element_append(&c->keys, PG_DETOAST_DATUM(sqlkey));
	for (int i = 0; i < tk->rowdesc->natts && tk->imgdesc != tk->rowdesc; i++)
		if (tk->astext[i].fn_oid != InvalidOid && !tk->rownulls[i])
			tk->rowvalues[i] = CStringGetTextDatum(OutputFunctionCall(&tk->astext[i],
																	  tk->rowvalues[i]));
	r->imageoff = bd_image_append(&c->images, tk->imgdesc, tk->rowvalues,
								  tk->rownulls);
	MemoryContextSwitchTo(old);
	MemoryContextReset(tk->scratch);
	tk->taken++;
	return true;
}

/*
 * Take one row of a capture statement (values and nulls, by column from
 * 0; see ArTake); a row already captured is left out.
 */
static void
ar_take_row(ArTake *tk, Datum *values, bool *nulls)
{
	ItemPointerData ctid;
	Oid			tableoid = InvalidOid;
	int			parent = -1;
	int			col;

	if (tk->loccol > 0)
	{
		tableoid = DatumGetObjectId(values[tk->loccol - 1]);
		ctid = *DatumGetItemPointer(values[tk->loccol]);
	}
	if (tk->level)
		parent = DatumGetInt32(values[tk->keycol]);
	col = tk->keycol + (tk->level ? 1 : 0);
	for (int i = 0; i < tk->rowdesc->natts; i++)
	{
		if (TupleDescAttr(tk->rowdesc, i)->attisdropped)
		{
			tk->rowvalues[i] = (Datum) 0;
			tk->rownulls[i] = true;
			continue;
		}
		tk->rowvalues[i] = values[col];
		tk->rownulls[i] = nulls[col];
		col++;
	}
	(void) bd_archive_take_deformed(tk, tableoid,
									tk->loccol > 0 ? &ctid : NULL, parent,
									tk->key ? (Datum) 0 : values[tk->keycol - 1]);
}

/*
 * Take the rows of the last SPI result (see ArTake for the columns).
 * Returns how many were taken.
 */
static int
ar_take(BdArchive *ar, Oid relid, int loccol, int keycol, bool level,
		char action, const char *changed, bool refs)
{
	ArTake		tk;
	/* kept: bd_archive_take_begin runs statements of its own */
	SPITupleTable *result = SPI_tuptable;
	uint64		n = SPI_processed;
	TupleDesc	desc = result->tupdesc;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);

	bd_archive_take_begin(&tk, ar, relid, loccol, keycol, level, action,
						  changed, refs);
	for (uint64 i = 0; i < n; i++)
	{
		heap_deform_tuple(result->vals[i], desc, values, nulls);
		ar_take_row(&tk, values, nulls);
	}
	bd_archive_take_end(&tk);
	return tk.taken;
}

/*
 * A DestReceiver that takes a capture statement's rows as they come,
 * without the copy into SPI_tuptable.
 */
typedef struct ArReceiver
{
	DestReceiver pub;
	ArTake	   *tk;
} ArReceiver;

static bool
ar_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ArReceiver *rcv = (ArReceiver *) self;

	slot_getallattrs(slot);
	ar_take_row(rcv->tk, slot->tts_values, slot->tts_isnull);
	return true;
}

static void
ar_receive_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
ar_receive_nothing(DestReceiver *self)
{
}

/*
 * Run a capture statement (sql, with parameters) and take its rows as
 * they come (ArTake's columns); returns the statement's row count.
 * Connected to SPI.
 */
static uint64
ar_exec_take(BdArchive *ar, const char *sql, bool generic, int nargs,
			 Oid *types, Datum *values, const char *nulls, int expected,
			 Oid relid, int loccol, int keycol, bool level, char action,
			 const char *changed, bool refs, int *taken)
{
	ParamListInfo params = makeParamList(nargs);
	SPIExecuteOptions opts;
	ArReceiver	rcv;
	ArTake		tk;
	int			rc;

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls != NULL && nulls[i] == 'n';
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	memset(&rcv, 0, sizeof(rcv));
	rcv.pub.receiveSlot = ar_receive;
	rcv.pub.rStartup = ar_receive_startup;
	rcv.pub.rShutdown = ar_receive_nothing;
	rcv.pub.rDestroy = ar_receive_nothing;
	/* not DestNone: SPI reports a SELECT whose rows go nowhere as utility */
	rcv.pub.mydest = DestTuplestore;
	rcv.tk = &tk;
	memset(&opts, 0, sizeof(opts));
	opts.params = params;
	opts.dest = (DestReceiver *) &rcv;
	bd_archive_take_begin(&tk, ar, relid, loccol, keycol, level, action,
						  changed, refs);
	if (generic)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		rc = SPI_execute_plan_extended(plan, &opts);
		SPI_freeplan(plan);
	}
	else
		rc = SPI_execute_extended(sql, &opts);
	bd_archive_take_end(&tk);
	if (rc != expected)
		elog(ERROR, "SPI_execute_extended returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	if (taken)
		*taken = tk.taken;
	return SPI_processed;
}

/*
 * Run a statement over stmt's parameters (bd_spi_exec), with a generic
 * plan when stmt asks for one.  Connected to SPI.
 */
static uint64
ar_stmt_exec(const BdArchiveDelete *stmt, const char *sql, int expected)
{
	SPIPlanPtr	plan;
	int			rc;

	if (!stmt->generic)
		return bd_spi_exec(sql, stmt->nargs, stmt->types, stmt->values,
						   stmt->nulls, false, expected);
	plan = SPI_prepare_cursor(sql, stmt->nargs, stmt->types,
							  CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	rc = SPI_execute_plan(plan, stmt->values, stmt->nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	SPI_freeplan(plan);
	return SPI_processed;
}

/* The changed columns of a SET NULL / SET DEFAULT key, as text[] */
char *
bd_archive_changed_columns(BdFkey *fk)
{
	char	  **names = palloc(sizeof(char *) * fk->nkeys);

	for (int i = 0; i < fk->nkeys; i++)
		names[i] = get_attname(fk->conrelid, fk->fk[i], false);
	/* array_out keeps its cache in flinfo: called with one */
	return OidOutputFunctionCall(F_ARRAY_OUT,
								 PointerGetDatum(bd_text_array(names, fk->nkeys)));
}

/*
 * The leaves, TIDs and indexes of rows [lo, hi) as three array parameters
 * of a statement.
 */
static void
ar_row_arrays(BdArchive *ar, int lo, int hi, Datum *values)
{
	int			n = hi - lo;
	Datum	   *rels = palloc(sizeof(Datum) * (n + 1));
	Datum	   *tids = palloc(sizeof(Datum) * (n + 1));
	Datum	   *idx = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		rels[i] = ObjectIdGetDatum(ar->rows[lo + i].tableoid);
		tids[i] = ItemPointerGetDatum(&ar->rows[lo + i].ctid);
		idx[i] = Int32GetDatum(lo + i);
	}
	values[0] = PointerGetDatum(construct_array(rels, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(tids, n, TIDOID,
												sizeof(ItemPointerData), false,
												TYPALIGN_SHORT));
	values[2] = PointerGetDatum(construct_array(idx, n, INT4OID, sizeof(int32),
												true, TYPALIGN_INT));
}

/*
 * Lock and capture the rows that the foreign keys referencing relid take
 * with rows [lo, hi) (of relid): CASCADE deletes them, and so on down;
 * SET NULL and SET DEFAULT change them.  As the tables' owner, as the
 * foreign keys' actions run.
 */
static void
ar_capture_referencing(BdArchive *ar, Oid relid, int lo, int hi)
{
	List	   *fkeys;
	ListCell   *lc;
	Oid			types[3] = {OIDARRAYOID, TIDARRAYOID, INT4ARRAYOID};

	if (hi <= lo)
		return;
	fkeys = bd_fkeys_referencing(relid);
	foreach(lc, fkeys)
	{
		BdFkey	   *fk = lfirst(lc);
		Datum		values[3];
		int			first;
		int			taken;

		if (!bd_archive_action(fk->deltype))
			continue;
		ar_row_arrays(ar, lo, hi, values);
		first = ar->n;
		(void) ar_exec_take(ar,
							psprintf("SELECT c.tableoid, c.ctid, %s, x.i, %s"
									 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
									 "  pg_catalog.unnest($3)) x(r, tid, i)"
									 " JOIN %s p ON p.tableoid OPERATOR(pg_catalog.=) x.r"
									 "  AND p.ctid OPERATOR(pg_catalog.=) x.tid"
									 " JOIN %s c ON %s"
									 " FOR UPDATE OF c",
									 ar_key_sql(fk->conrelid, "c"),
									 ar_row_columns(fk->conrelid, "c", NULL),
									 ar_from(relid), ar_from(fk->conrelid),
									 bd_fkey_match(fk, "p", "c")),
							false, 3, types, values, NULL, SPI_OK_SELECT,
							fk->conrelid, 1, 3, true, fk->deltype,
							fk->deltype == 'c' ? NULL : bd_archive_changed_columns(fk),
							false, &taken);
		if (fk->deltype == 'c')
			ar_capture_referencing(ar, fk->conrelid, first, first + taken);
	}
}

/*
 * Lock the rows stmt deletes (found as the job's owner, who runs the
 * statement, locked as the tables' owner: FOR UPDATE needs UPDATE, which a
 * job's owner need not have) and capture them.  A row changed between the
 * two statements is not locked (its TID no longer matches) and not
 * deleted either (its new version is no candidate).
 */
static void
ar_lock_rows(BdArchive *ar, const BdArchiveDelete *stmt)
{
	BdUserSwitch sw;
	uint64		n;
	Datum	   *rels;
	Datum	   *tids;
	Oid			types[2] = {OIDARRAYOID, TIDARRAYOID};
	Datum		values[2];

	n = ar_stmt_exec(stmt, psprintf("SELECT t.tableoid, t.ctid %s", stmt->from_where),
					 SPI_OK_SELECT);
	rels = palloc(sizeof(Datum) * (n + 1));
	tids = palloc(sizeof(Datum) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		rels[i] = bd_spi_datum(i, 1, &isnull);
		tids[i] = PointerGetDatum(palloc(sizeof(ItemPointerData)));
		*DatumGetItemPointer(tids[i]) = *DatumGetItemPointer(bd_spi_datum(i, 2, &isnull));
	}
	values[0] = PointerGetDatum(construct_array(rels, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(tids, n, TIDOID,
												sizeof(ItemPointerData), false,
												TYPALIGN_SHORT));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	(void) ar_exec_take(ar,
						psprintf("SELECT t.tableoid, t.ctid, %s, %s"
								 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) x(r, tid)"
								 " JOIN %s t ON t.tableoid OPERATOR(pg_catalog.=) x.r"
								 "  AND t.ctid OPERATOR(pg_catalog.=) x.tid"
								 " FOR UPDATE OF t",
								 ar_key_sql(ar->relid, "t"), ar_row_columns(ar->relid, "t", NULL),
								 ar_from(ar->relid)),
						false, 2, types, values, NULL, SPI_OK_SELECT,
						ar->relid, 1, 3, false, 'c', NULL, false, NULL);
	ar_capture_referencing(ar, ar->relid, 0, ar->n);
	bd_switch_user_end(&sw);
}

/* The leaves the captured rows are in, each once */
static List *
ar_leaves(BdArchive *ar)
{
	List	   *leaves = NIL;

	for (int i = 0; i < ar->n; i++)
		leaves = list_append_unique_oid(leaves, ar->rows[i].tableoid);
	return leaves;
}

/* Rows deleted or updated in leaf by this transaction so far */
static int64
ar_changes(Oid leaf)
{
	return DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted,
											 ObjectIdGetDatum(leaf))) +
		DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_updated,
										  ObjectIdGetDatum(leaf)));
}

/*
 * After the DELETE: in each leaf where the rows changed are not the rows
 * captured (before[] the changes before it), find the captured rows still
 * there at their TIDs (a trigger kept them): they are not archived.
 */
static void
ar_reconcile(BdArchive *ar, List *leaves, int64 *before)
{
	ListCell   *lc;
	int			k = 0;

	foreach(lc, leaves)
	{
		Oid			leaf = lfirst_oid(lc);
		int64		captured = 0;
		Datum	   *tids;
		Datum	   *idx;
		int			n = 0;
		Oid			types[2] = {TIDARRAYOID, INT4ARRAYOID};
		Datum		values[2];
		uint64		found;
		BdUserSwitch sw;

		for (int i = 0; i < ar->n; i++)
			if (ar->rows[i].tableoid == leaf)
				captured++;
		if (ar_changes(leaf) - before[k++] == captured)
			continue;

		tids = palloc(sizeof(Datum) * (captured + 1));
		idx = palloc(sizeof(Datum) * (captured + 1));
		for (int i = 0; i < ar->n; i++)
			if (ar->rows[i].tableoid == leaf)
			{
				tids[n] = ItemPointerGetDatum(&ar->rows[i].ctid);
				idx[n++] = Int32GetDatum(i);
			}
		values[0] = PointerGetDatum(construct_array(tids, n, TIDOID,
													sizeof(ItemPointerData),
													false, TYPALIGN_SHORT));
		values[1] = PointerGetDatum(construct_array(idx, n, INT4OID,
													sizeof(int32), true,
													TYPALIGN_INT));
		bd_switch_user_begin(&sw, bd_job_table_owner());
		found = bd_spi_exec(psprintf("SELECT x.i FROM ROWS FROM (pg_catalog.unnest($1),"
									 " pg_catalog.unnest($2)) x(tid, i)"
									 " JOIN ONLY %s r ON r.ctid OPERATOR(pg_catalog.=) x.tid",
									 bd_qualified_relname(leaf)),
							2, types, values, NULL, false, SPI_OK_SELECT);
		for (uint64 j = 0; j < found; j++)
		{
			bool		isnull;

			ArRow	   *r = &ar->rows[DatumGetInt32(bd_spi_datum(j, 1, &isnull))];

			r->kept = true;
			ar->chunks[r->chunk].nkept++;
		}
		bd_switch_user_end(&sw);
	}
}

/*
 * A chunk buffer as a one-dimensional array of n elements of elemtype: the
 * buffer itself, its header filled in.
 */
static Datum
ar_chunk_array(StringInfo buf, int n, Oid elemtype)
{
	ArrayType  *a = (ArrayType *) buf->data;

	SET_VARSIZE(a, buf->len);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = elemtype;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	return PointerGetDatum(a);
}

/*
 * A chunk's keys and images without its kept rows, into keys and images
 * (new buffers; the chunk's own stay as they are, for the roots).
 */
static void
ar_chunk_compact(BdArchive *ar, ArChunk *c, StringInfo keys,
				 StringInfo images)
{
	ar_chunk_buffer(keys);
	ar_chunk_buffer(images);
	for (int j = 0; j < c->n; j++)
	{
		ArRow	   *r = &ar->rows[c->rows[j]];

		if (r->kept)
			continue;
		(void) ar_element_append(keys, (struct varlena *) (c->keys.data + r->keyoff));
		(void) ar_element_append(images, (struct varlena *) (c->images.data + r->imageoff));
	}
}

/*
 * The INSERT of a chunk, planned once per backend with a generic plan:
 * its multi-megabyte arrays are parameters read where they lie, not
 * copied into a one-shot plan's constants.
 */
static SPIPlanPtr
ar_chunk_insert_plan(void)
{
	static SPIPlanPtr kept = NULL;
	SPIPlanPtr	plan;
	Oid			types[12] = {INT8OID, OIDOID, INT4OID, TEXTOID, TEXTOID,
		JSONBARRAYOID, JSONBARRAYOID, BYTEAARRAYOID, REGTYPEARRAYOID, INT4ARRAYOID,
	TIMESTAMPTZOID, XIDARRAYOID};

	if (kept != NULL)
		return kept;
	plan = SPI_prepare_cursor("INSERT INTO bulkdelete.archive (operation_id, relation, depth,"
							  " action, changed_columns, record_keys, root_keys, images,"
							  " image_types, image_typmods, expires_at, changed_by)"
							  " VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5::pg_catalog.text[],"
							  " $6, $7, $8, $9, $10, $11, $12)",
							  12, types, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed for the archive's INSERT: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed for the archive's INSERT");
	/* kept only once it outlives SPI: an error before leaves none */
	kept = plan;
	return kept;
}

/*
 * The compression methods of bulkdelete.archive's columns record_keys,
 * root_keys and images (in ar_flush_chunk's order), InvalidCompressionMethod
 * for one that is not compressed (storage EXTERNAL where the server has no
 * lz4): as the toaster would compress them.  In a transaction.
 */
static void
ar_column_compression(char *methods)
{
	static const char *const columns[] = {"record_keys", "root_keys", "images"};
	Oid			relid = get_relname_relid("archive",
										  get_namespace_oid("bulkdelete", false));
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	for (int k = 0; k < lengthof(columns); k++)
	{
		AttrNumber	attnum = get_attnum(relid, columns[k]);
		Form_pg_attribute att;

		if (attnum <= 0)
			elog(ERROR, "bulkdelete.archive has no column \"%s\"", columns[k]);
		att = TupleDescAttr(desc, attnum - 1);
		methods[k] = att->attstorage != TYPSTORAGE_EXTENDED ?
			InvalidCompressionMethod :
			CompressionMethodIsValid(att->attcompression) ?
			att->attcompression : default_toast_compression;
	}
	relation_close(rel, AccessShareLock);
}

/*
 * A chunk's array compressed with method when it is too big to stay in the
 * archive row (as the toaster would compress it, and then store it out of
 * line as it is), else the array itself.  Compressing it here, not in the
 * INSERT's heap_insert, has the INSERT form its row around the compressed
 * bytes instead of copying (and zeroing) the whole array.
 */
static Datum
ar_compressed(Datum array, char method)
{
	Datum		c;

	if (method == InvalidCompressionMethod ||
		VARSIZE(DatumGetPointer(array)) <= TOAST_TUPLE_THRESHOLD)
		return array;
	c = toast_compress_datum(array, method);
	return c != (Datum) 0 ? c : array;
}

/*
 * Write chunk c (its rows that went, not kept) as one archive row.  As the
 * tables' owner.
 */
static void
ar_flush_chunk(BdArchive *ar, ArChunk *c)
{
	int			n = c->n - c->nkept;
	Datum	   *roots = palloc(sizeof(Datum) * (n + 1));
	bool	   *rootnulls = palloc(sizeof(bool) * (n + 1));
	Datum	   *xids = palloc(sizeof(Datum) * (n + 1));
	bool	   *xidnulls = palloc(sizeof(bool) * (n + 1));
	bool		anyxid = false;
	int			dims[1];
	int			lbs[1] = {1};
	int			k = 0;
	StringInfoData keys = c->keys;
	StringInfoData images = c->images;
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char		methods[3];
	Datum		plain[3];		/* the arrays before compression */
	int			rc;

	if (n == 0)
		return;
	for (int j = 0; j < c->n; j++)
	{
		int			i = c->rows[j];
		ArRow	   *r = &ar->rows[i];
		ArRow	   *root = &ar->rows[r->root];

		if (r->kept)
			continue;
		rootnulls[k] = r->root == i;
		roots[k] = rootnulls[k] ? (Datum) 0 :
			PointerGetDatum(ar->chunks[root->chunk].keys.data + root->keyoff);
		xidnulls[k] = !TransactionIdIsValid(r->changed_by);
		xids[k] = TransactionIdGetDatum(r->changed_by);
		anyxid |= !xidnulls[k];
		k++;
	}
	if (c->nkept > 0)
		ar_chunk_compact(ar, c, &keys, &images);
	values[0] = Int64GetDatum(ar->job_id);
	values[1] = ObjectIdGetDatum(c->relid);
	values[2] = Int32GetDatum(c->depth);
	values[3] = CStringGetTextDatum(c->action == 'c' ? "delete" :
									c->action == 'n' ? "set null" : "set default");
	values[4] = c->changed ? CStringGetTextDatum(c->changed) : (Datum) 0;
	nulls[4] = c->changed ? ' ' : 'n';
	dims[0] = n;
	ar_column_compression(methods);
	plain[0] = ar_chunk_array(&keys, n, JSONBOID);
	plain[1] = PointerGetDatum(construct_md_array(roots, rootnulls, 1, dims, lbs,
												  JSONBOID, -1, false,
												  TYPALIGN_INT));
	plain[2] = ar_chunk_array(&images, n, BYTEAOID);
	for (int m = 0; m < 3; m++)
		values[5 + m] = ar_compressed(plain[m], methods[m]);
	bd_image_layout_arrays(c->relid, &values[8], &values[9]);
	values[10] = TimestampTzGetDatum(ar->expires_at);
	values[11] = anyxid ?
		PointerGetDatum(construct_md_array(xids, xidnulls, 1, dims, lbs,
										   XIDOID, sizeof(TransactionId), true,
										   TYPALIGN_INT)) : (Datum) 0;
	nulls[11] = anyxid ? ' ' : 'n';
	rc = SPI_execute_plan(ar_chunk_insert_plan(), values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_plan returned %s for the archive's INSERT",
			 SPI_result_code_string(rc));
	/*
	 * The compressed copies, the roots and the XIDs are the row's now: not
	 * kept to the batch's end (the plain keys and images are the chunks'
	 * buffers, whose keys later chunks' roots point into)
	 */
	for (int m = 0; m < 3; m++)
		if (values[5 + m] != plain[m])
			pfree(DatumGetPointer(values[5 + m]));
	pfree(DatumGetPointer(plain[1]));
	if (anyxid)
		pfree(DatumGetPointer(values[11]));
}

/*
 * Write the attempt's rows that went (not kept) to bulkdelete.archive, one
 * archive row per chunk, as the tables' owner.
 */
static void
ar_flush(BdArchive *ar)
{
	BdUserSwitch sw;

	if (ar->n == 0)
		return;
	ar->expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
															 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
															 IntervalPGetDatum(ar->retention)));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	for (int k = 0; k < ar->nchunks; k++)
		ar_flush_chunk(ar, &ar->chunks[k]);
	bd_switch_user_end(&sw);
	ar->archived = true;
}

/* The state of one attempt, for bd_try_subxact */
typedef struct ArAttempt
{
	BdArchive  *ar;
	const BdArchiveDelete *stmt;
	uint64		processed;
} ArAttempt;

/*
 * The DELETE with "RETURNING [<caller's>,] [t.tableoid, t.ctid,] <key>,
 * <row's columns>", its rows taken as they are deleted (with their leaf and TID and
 * their referenced columns when located, for the capture after it); the
 * caller's RETURNING rows in *result (NULL without).  Returns the count.
 */
static uint64
ar_delete_returning(BdArchive *ar, const BdArchiveDelete *stmt, bool located,
					SPITupleTable **result)
{
	const char *loc = located ? "t.tableoid, t.ctid, " : "";
	uint64		processed;
	int			natts;
	int			nrow;
	char	   *row = ar_row_columns(ar->relid, "t", &nrow);

	if (stmt->returning == NULL)
	{
		/* taken as they come */
		*result = NULL;
		return ar_exec_take(ar, psprintf("%s RETURNING %s%s, %s",
										 stmt->delete_sql, loc,
										 ar_key_sql(ar->relid, "t"), row),
							stmt->generic, stmt->nargs, stmt->types, stmt->values,
							stmt->nulls, SPI_OK_DELETE_RETURNING,
							ar->relid, located ? 1 : 0, located ? 3 : 1,
							false, 'c', NULL, located, NULL);
	}
	/* the caller reads its own columns of SPI_tuptable */
	processed = ar_stmt_exec(stmt, psprintf("%s RETURNING %s, %s%s, %s",
											stmt->delete_sql, stmt->returning,
											loc, ar_key_sql(ar->relid, "t"),
											row),
							 SPI_OK_DELETE_RETURNING);
	*result = SPI_tuptable;
	natts = (*result)->tupdesc->natts;
	(void) ar_take(ar, ar->relid, located ? natts - nrow - 2 : 0,
				   natts - nrow, false, 'c', NULL, located);
	return processed;
}

/*
 * One attempt: capture, DELETE, write the archive rows, leaving the
 * DELETE's own result in SPI_tuptable for the caller.  Three ways:
 * without a foreign key with an action, the DELETE's RETURNING rows;
 * with one, those and then, after the DELETE, the rows its actions
 * removed or changed (archive_cascade.c), where the tree allows it; else
 * the rows locked and read before the DELETE (ar_lock_rows) and checked
 * after it (ar_reconcile).
 */
static void
ar_attempt(void *arg)
{
	ArAttempt  *at = (ArAttempt *) arg;
	BdArchive  *ar = at->ar;
	const BdArchiveDelete *stmt = at->stmt;
	bool		tree = false;
	ListCell   *lc;
	SPITupleTable *result;
	uint64		processed;
	HASHCTL		ctl;

	ar->cxt = CurrentMemoryContext;
	ar->n = 0;
	ar->rows = NULL;
	ar->max = 0;
	ar->nchunks = 0;
	ar->maxchunks = 0;
	ar->chunks = NULL;
	ar->lastchunk = 0;
	ar->seen = NULL;
	foreach(lc, bd_fkeys_referencing(ar->relid))
		if (bd_archive_action(((BdFkey *) lfirst(lc))->deltype))
			tree = true;

	if (tree)
	{
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(ArSeen);
		ctl.entrysize = sizeof(ArSeen);
		ctl.hcxt = CurrentMemoryContext;
		ar->seen = hash_create("bulkdelete archive rows", 1024, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (!tree)
		processed = ar_delete_returning(ar, stmt, false, &result);
	else if (bd_archive_cascade_after(ar->relid))
	{
		TransactionId xid;

		processed = ar_delete_returning(ar, stmt, true, &result);
		/* none when the DELETE changed nothing */
		xid = GetCurrentTransactionIdIfAny();
		if (TransactionIdIsValid(xid))
			bd_archive_capture_cascaded(ar, ar->relid, 0, ar->n, xid);
	}
	else
	{
		List	   *leaves;
		int64	   *before;
		int			k = 0;

		ar_lock_rows(ar, stmt);
		leaves = ar_leaves(ar);
		before = palloc(sizeof(int64) * (list_length(leaves) + 1));
		foreach(lc, leaves)
			before[k++] = ar_changes(lfirst_oid(lc));
		if (stmt->returning)
			processed = ar_stmt_exec(stmt, psprintf("%s RETURNING %s",
													stmt->delete_sql,
													stmt->returning),
									 SPI_OK_DELETE_RETURNING);
		else
			processed = ar_stmt_exec(stmt, stmt->delete_sql, SPI_OK_DELETE);
		result = SPI_tuptable;
		ar_reconcile(ar, leaves, before);
		if (TransactionIdIsValid(GetCurrentTransactionIdIfAny()))
			bd_archive_changed_by(ar, GetCurrentTransactionIdIfAny());
	}
	ar_flush(ar);
	if (ar->nchunks > 0)
	{
		ar->sized.rows = ar->n;
		ar->sized.keys = ar->chunks[0].keys.len;
		ar->sized.images = ar->chunks[0].images.len;
	}
	/* the caller reads the DELETE's rows */
	SPI_tuptable = result;
	SPI_processed = processed;
	at->processed = processed;
}

/*
 * Run stmt's DELETE with its capture, in a subtransaction: true with
 * *processed (the DELETE's count; its RETURNING rows in SPI_tuptable) on
 * success, false with *edata when the attempt was rolled back, archive rows
 * included (bd_try_subxact's rules: a cancel is raised again).  As the
 * job's owner, connected to SPI, in the batch's transaction.
 */
bool
bd_archive_delete(BdArchive *ar, const BdArchiveDelete *stmt,
				  uint64 *processed, ErrorData **edata)
{
	ArAttempt	at;

	at.ar = ar;
	at.stmt = stmt;
	at.processed = 0;
	if (!bd_try_subxact(ar_attempt, &at, edata))
	{
		/*
		 * The attempts that isolate the failure (isolate.c: halves, then
		 * rows, each in this batch's memory until its end) size their
		 * buffers by what they take, not by the last success: a batch's
		 * bisection would otherwise allocate that size thousands of times.
		 */
		memset(&ar->sized, 0, sizeof(ar->sized));
		return false;
	}
	*processed = at.processed;
	return true;
}

/*
 * The batch is being recorded: the job's archive now lasts until the
 * expiry of its last rows (operation.archive_expires_at).
 */
void
bd_archive_end_batch(BdArchive *ar)
{
	if (ar == NULL || !ar->archived)
		return;
	bd_job_set_archive_expiry(ar->job_id, ar->expires_at);
	ar->archived = false;
}

/*
 * Empty the archive of job job_id; returns the rows removed.  As the
 * tables' owner; the caller checked access.  In a transaction.
 */
int64
bd_archive_purge(int64 job_id)
{
	BdUserSwitch sw;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	uint64		n;

	if (!bd_archive_installed())
		return 0;
	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec("WITH d AS (DELETE FROM bulkdelete.archive WHERE operation_id = $1"
				" RETURNING pg_catalog.cardinality(images) AS n)"
				" SELECT COALESCE(pg_catalog.sum(n), 0)::pg_catalog.int8 FROM d",
				1, types, values, NULL, false, SPI_OK_SELECT);
	n = (uint64) bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	SPI_finish();
	bd_job_set_archive_expiry(job_id, DT_NOBEGIN);
	return (int64) n;
}

/* Archive rows (chunks of up to a batch's rows) the expiry removes per transaction */
#define AR_EXPIRE_BATCH 100

/*
 * One step of the workers' expiry, in a transaction of its own (a
 * worker's, never a user's): remove up to AR_EXPIRE_BATCH expired chunks
 * (the BRIN index on expires_at finds them).  Returns when to look
 * again: now when it removed a full batch, else the earliest expiry of a
 * job's archive (operation.archive_expires_at, the expiry of its last
 * rows: a job's earlier rows are removed at the latest then), DT_NOEND
 * when no job has one.  Connected to SPI.
 */
TimestampTz
bd_archive_expire(void)
{
	BdUserSwitch sw;
	uint64		n;

	if (!bd_archive_installed())
		return DT_NOEND;
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec(psprintf("DELETE FROM bulkdelete.archive a USING ("
							 "  SELECT id FROM bulkdelete.archive"
							 "  WHERE expires_at < pg_catalog.now() LIMIT %d) x"
							 " WHERE a.id = x.id",
							 AR_EXPIRE_BATCH),
					0, NULL, NULL, NULL, false, SPI_OK_DELETE);
	bd_switch_user_end(&sw);
	if (n >= AR_EXPIRE_BATCH)
		return GetCurrentTimestamp();
	return bd_job_next_archive_expiry();
}
