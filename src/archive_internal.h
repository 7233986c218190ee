/*-------------------------------------------------------------------------
 *
 * archive_internal.h
 *		What the recycle bin's capture modules share (archive.c, which takes
 *		rows and writes the chunks, and archive_cascade.c, which finds the
 *		rows the foreign keys' actions removed or changed after the DELETE):
 *		the attempt's rows, the chunks they are written into as they come,
 *		and how a row is taken.  Nothing outside the archive includes it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_ARCHIVE_INTERNAL_H
#define BULKDELETE_ARCHIVE_INTERNAL_H

#include "archive.h"
#include "fkeys.h"

#include "access/attnum.h"
#include "access/transam.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "storage/itemptr.h"
#include "utils/hsearch.h"

/* One captured row, until the end of the attempt */
typedef struct ArRow
{
	Oid			relid;			/* the relation whose row type the image has */
	Oid			tableoid;		/* the leaf the row was in */
	ItemPointerData ctid;		/* where it was (invalid: not known) */
	int			depth;
	char		action;			/* confdeltype: c (deleted), n, d */
	int			root;			/* index of the depth-0 row it came from */
	int			chunk;			/* its chunk (BdArchive.chunks) */
	int			keyoff;			/* its key and image in the chunk's */
	int			imageoff;		/* buffers (ArChunk) */
	Datum	   *refvals;		/* the columns referencing keys match */
	bool	   *refnulls;		/* (ArTake.refatts), or NULL */
	bool		kept;			/* still there after the DELETE */
	TransactionId changed_by;	/* SET NULL / SET DEFAULT captured after the
								 * DELETE: the XID of the action's update,
								 * its new version's xmin (else invalid) */
} ArRow;

/*
 * The rows of one relation, depth and action of an attempt: one archive
 * row.  Its keys (jsonb) and images (bytea) are written as they come into
 * two buffers laid out as the arrays record_keys and images will be (a
 * one-dimensional array's header, then each element with a 4-byte header
 * at an int-aligned offset), so that each array is its buffer, not a copy.
 */
typedef struct ArChunk
{
	Oid			relid;
	int			depth;
	char		action;
	const char *changed;		/* text[] literal of the columns an action
								 * changed, or NULL */
	StringInfoData keys;
	StringInfoData images;
	int			n;				/* rows, kept ones included */
	int			nkept;
	int		   *rows;			/* their indexes in BdArchive.rows */
	int			maxrows;
} ArChunk;

struct BdArchive
{
	int64		job_id;
	Oid			relid;			/* the relation the job deletes from */
	Interval   *retention;
	TimestampTz expires_at;		/* of the rows archived by this batch */
	bool		archived;		/* this batch archived rows */
	/* the attempt's rows and chunks, in cxt */
	MemoryContext cxt;
	int			n;
	int			max;
	ArRow	   *rows;
	int			nchunks;
	int			maxchunks;
	ArChunk    *chunks;
	int			lastchunk;		/* the chunk of the last row taken */
	HTAB	   *seen;			/* (leaf, TID) of the rows taken, or NULL */
	/* the last attempt's rows and first chunk: the next one's first sizes */
	struct
	{
		int			rows;
		int			keys;
		int			images;
	}			sized;
};

/* A (leaf, TID), to capture each row once */
typedef struct ArSeen
{
	Oid			tableoid;
	ItemPointerData ctid;
} ArSeen;

typedef struct ArKeyPlan ArKeyPlan;

/*
 * How the rows of one relation, action and source are taken
 * (bd_archive_take_*).  A capture statement's columns: loccol (from 1;
 * 0: none) the leaf and loccol + 1 the TID, keycol the key (when not built
 * in C), keycol + 1 the referenced row's index when level, then the row's
 * columns, every one not dropped in attribute order (ar_row_columns).
 */
typedef struct ArTake
{
	BdArchive  *ar;
	Oid			relid;			/* whose row type the images have */
	int			loccol;
	int			keycol;
	bool		level;
	char		action;
	const char *changed;
	int			taken;
	MemoryContext cxt;			/* where the rows go */
	MemoryContext scratch;		/* a row's fetched values, reset every row */
	int			nest;			/* the image settings' GUC nest level */
	ArKeyPlan  *key;			/* the key built in C from the row, or NULL
								 * (the statement's key column) */
	TupleDesc	rowdesc;		/* relid's row type */
	TupleDesc	imgdesc;		/* its images' (rowdesc, or a copy with the
								 * columns written as text retyped) */
	FmgrInfo   *astext;			/* by column: its output function when
								 * written as text, else fn_oid 0 */
	int			nref;			/* columns kept with each row for the */
	AttrNumber *refatts;		/* capture after the DELETE, or 0 */
	Datum	   *rowvalues;		/* a row's columns, by attribute */
	bool	   *rownulls;
} ArTake;

extern void bd_archive_take_begin(ArTake *tk, BdArchive *ar, Oid relid,
								  int loccol, int keycol, bool level,
								  char action, const char *changed,
								  bool refs);
extern void bd_archive_take_end(ArTake *tk);
extern bool bd_archive_take_deformed(ArTake *tk, Oid tableoid,
									 ItemPointer ctid, int parent,
									 Datum sqlkey);
extern bool bd_archive_key_in_c(Oid relid);
extern AttrNumber *bd_archive_referenced_atts(Oid relid, int *n);
extern char *bd_archive_changed_columns(BdFkey *fk);
extern bool bd_archive_action(char deltype);

/* archive_cascade.c */
extern bool bd_archive_cascade_after(Oid relid);
extern void bd_archive_changed_by(BdArchive *ar, TransactionId first_xid);
extern void bd_archive_capture_cascaded(BdArchive *ar, Oid relid, int lo,
										int hi, TransactionId first_xid);

#endif							/* BULKDELETE_ARCHIVE_INTERNAL_H */
