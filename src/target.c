/*-------------------------------------------------------------------------
 *
 * target.c
 *		Which relations a bulk delete may delete from.  Every entry point
 *		that names a target (submit in both forms and each query of a set,
 *		schedule, create_job, delete_records, preview) asks here, and a job
 *		asks again when it starts, since a partition may be attached in
 *		between.
 *
 *		Never a target, for anyone: system catalogs and whatever lives in
 *		pg_catalog, information_schema or pg_toast (a superuser's DELETE
 *		there corrupts the database), the members of an extension
 *		(bulkdelete's own job tables, pg_cron's cron.job: their rows change
 *		only through their extension), and foreign tables.  Not deleted
 *		from either, though preview may count them: relations with a
 *		foreign-table leaf.  A job tells its candidates apart by row address
 *		and by the transaction that wrote them (ctid, xmin); through
 *		postgres_fdw every row's xmin and the leaf's relfilenode read 0, so
 *		the start-snapshot and rewrite checks would pass rows the job never
 *		selected.  The exception (SPEC 9): a query job's postgres_fdw foreign
 *		partitions, run on their own servers as shard tasks, which
 *		source_remote.c checks, unless the job archives what it deletes
 *		(0A000: the shards would archive on their own servers, out of the
 *		coordinator's restore).  A view is judged by the relation it shows.
 *
 *-------------------------------------------------------------------------
 */
#include "target.h"

#include "source_remote.h"
#include "spi_util.h"

#include "access/relation.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/* " at <path>", or nothing */
static const char *
target_at(const char *path)
{
	return path == NULL ? "" : psprintf(" at %s", path);
}

/*
 * The relation a view shows when it has exactly one (an automatically
 * updatable view), or InvalidOid.  Views whose DELETE goes to a trigger or
 * a rule have none; a job refuses them when it starts.
 */
static Oid
target_view_base(Oid viewid)
{
	Relation	view = relation_open(viewid, AccessShareLock);
	Query	   *query = get_view_query(view);
	Oid			base = InvalidOid;

	if (query->jointree != NULL && list_length(query->jointree->fromlist) == 1 &&
		IsA(linitial(query->jointree->fromlist), RangeTblRef))
	{
		RangeTblRef *ref = linitial_node(RangeTblRef, query->jointree->fromlist);
		RangeTblEntry *rte = rt_fetch(ref->rtindex, query->rtable);

		if (rte->rtekind == RTE_RELATION)
			base = rte->relid;
	}
	relation_close(view, NoLock);
	return base;
}

/*
 * Raise 42809 for relation rel, reached from target top (rel itself, or the
 * relation view top shows), which cannot be deleted from because it
 * "reason" ("is a foreign table").
 */
static void
target_refuse(Oid top, Oid rel, const char *reason, const char *path,
			  const char *detail, const char *hint)
{
	if (rel == top)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot bulk delete from \"%s\": it %s%s",
						bd_qualified_relname(rel), reason, target_at(path)),
				 errdetail("%s", detail),
				 hint ? errhint("%s", hint) : 0));
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot bulk delete from \"%s\": the relation it shows, \"%s\", %s%s",
					bd_qualified_relname(top), bd_qualified_relname(rel),
					reason, target_at(path)),
			 errdetail("%s", detail),
			 hint ? errhint("%s", hint) : 0));
}

static const char *const target_foreign_detail =
"A bulk delete tells its rows apart by row address and by the transaction that wrote them, which rows of a foreign table do not have, so it could delete rows it never selected.";
static const char *const target_foreign_hint =
"Delete on the foreign table's own server.";

/*
 * Does relid exist?  One that does not (dropped since a job was submitted)
 * is the caller's 42P01, raised where it looks the relation up.
 */
static bool
target_exists(Oid relid)
{
	return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid));
}

void
bd_target_check(Oid relid, const char *path)
{
	Oid			rel = relid;

	if (!target_exists(relid))
		return;

	/* views of views: at most as deep as the rewriter would go */
	for (int depth = 0; OidIsValid(rel) && depth < 100; depth++)
	{
		Oid			nsp = get_rel_namespace(rel);
		Oid			ext;

		if (IsCatalogRelationOid(rel) || nsp == PG_CATALOG_NAMESPACE ||
			IsToastNamespace(nsp) ||
			nsp == get_namespace_oid("information_schema", true))
			target_refuse(relid, rel, "is a system relation", path,
						  "System catalogs and the relations of schemas pg_catalog, information_schema and pg_toast are never the target of a bulk delete.",
						  NULL);
		ext = getExtensionOfObject(RelationRelationId, rel);
		if (OidIsValid(ext))
			target_refuse(relid, rel,
						  psprintf("belongs to extension \"%s\"",
								   get_extension_name(ext)),
						  path,
						  "A relation that belongs to an extension holds that extension's own data, which changes only through the extension.",
						  NULL);
		if (get_rel_relkind(rel) == RELKIND_FOREIGN_TABLE)
			target_refuse(relid, rel, "is a foreign table", path,
						  target_foreign_detail, target_foreign_hint);
		if (get_rel_relkind(rel) != RELKIND_VIEW)
			break;
		rel = target_view_base(rel);
	}
}

void
bd_target_check_leaves(Oid relid, const char *path)
{
	bd_target_check_shards(relid, path, false, false, false);
}

/*
 * Raise 0A000: an archived job (SPEC 8) on a target with foreign partition
 * leaf.  The shard's part runs as a job on its own server, which would
 * archive there, where the coordinator's restore, purge and bin never
 * look: the job would delete rows that bulkdelete.restore of it cannot
 * put back.
 */
static void
target_refuse_archive(Oid relid, Oid leaf, const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot archive a bulk delete from \"%s\": its partition \"%s\" is a foreign table%s",
					bd_qualified_relname(relid), bd_qualified_relname(leaf),
					target_at(path)),
			 errdetail("A foreign partition's rows are deleted by a job on its own server, whose archive bulkdelete.restore, bulkdelete.purge_archive and bulkdelete.archived_records of this job do not reach."),
			 errhint("Submit the job without \"archive\", or submit an archived job on the foreign partition's own server.")));
}

void
bd_target_check_shards(Oid relid, const char *path, bool shards, bool probe,
					   bool archive)
{
	Oid			rel = relid;
	List	   *leaves;
	ListCell   *lc;

	if (!target_exists(relid))
		return;
	for (int depth = 0; OidIsValid(rel) && depth < 100 &&
		 get_rel_relkind(rel) == RELKIND_VIEW; depth++)
		rel = target_view_base(rel);
	if (!OidIsValid(rel))
		return;
	if (get_rel_relkind(rel) == RELKIND_FOREIGN_TABLE)
		target_refuse(relid, rel, "is a foreign table", path,
					  target_foreign_detail, target_foreign_hint);
	if (!has_subclass(rel))
		return;

	/* locked as a DELETE on rel would lock them */
	leaves = find_all_inheritors(rel, AccessShareLock, NULL);
	foreach(lc, leaves)
	{
		Oid			leaf = lfirst_oid(lc);

		if (get_rel_relkind(leaf) != RELKIND_FOREIGN_TABLE)
			continue;

		/*
		 * A foreign partition of a partitioned target named directly runs
		 * on its own server (source_remote.c), if it can.
		 */
		if (shards && rel == relid && get_rel_relispartition(leaf) &&
			get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
		{
			if (archive)
				target_refuse_archive(relid, leaf, path);
			bd_remote_check_leaf(relid, leaf, path, probe);
			continue;
		}
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot bulk delete from \"%s\": its %s \"%s\" is a foreign table%s",
						bd_qualified_relname(relid),
						get_rel_relispartition(leaf) ? "partition" : "child table",
						bd_qualified_relname(leaf), target_at(path)),
				 errdetail("%s", target_foreign_detail),
				 get_rel_relispartition(leaf) ?
				 errhint("Detach the partition, or delete on the foreign table's own server.") :
				 errhint("Take the child out of the inheritance (NO INHERIT), or delete on the foreign table's own server.")));
	}
}
