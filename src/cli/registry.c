/*
 * The registry in SQLite. Every statement is prepared with bound parameters; nothing from
 * the command line is ever pasted into SQL text. Schema changes are applied in order by
 * registry_migrate(), one step per version, inside a transaction.
 */
#include "cli/registry.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Several short-lived cryo processes may write at once; SQLite serialises them. */
#define REGISTRY_BUSY_TIMEOUT_MS 10000

struct registry {
	sqlite3 *db;
};

static const char *const schema_v1 =
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version (version) VALUES (1);"
	"CREATE TABLE vms ("
	"  name TEXT PRIMARY KEY,"
	"  ram_mib INTEGER NOT NULL,"
	"  cpus INTEGER NOT NULL,"
	"  kernel TEXT NOT NULL,"
	"  initrd TEXT NOT NULL DEFAULT '',"
	"  cmdline TEXT NOT NULL DEFAULT '',"
	"  created INTEGER NOT NULL,"
	"  last_exit INTEGER NOT NULL DEFAULT -1,"
	"  last_exit_time INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE disks ("
	"  vm TEXT NOT NULL REFERENCES vms(name) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL,"
	"  path TEXT NOT NULL,"
	"  readonly INTEGER NOT NULL,"
	"  PRIMARY KEY (vm, position));";

static int sqlite_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

static int registry_read_version(struct registry *r, int *version)
{
	sqlite3_stmt *st;
	int rc;

	*version = 0;
	rc = sqlite3_prepare_v2(r->db,
				"SELECT name FROM sqlite_master WHERE type='table' AND "
				"name='schema_version'", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return sqlite_to_errno(rc);

	rc = sqlite3_prepare_v2(r->db, "SELECT MAX(version) FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : sqlite_to_errno(rc);
}

static int registry_migrate(struct registry *r, char *err, size_t errlen)
{
	int version, rc, ret;

	rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	ret = registry_read_version(r, &version);
	if (ret)
		goto rollback;

	if (version > REGISTRY_SCHEMA_VERSION) {
		snprintf(err, errlen, "registry schema version %d is newer than this cryo "
			 "supports (%d); use a newer cryo", version, REGISTRY_SCHEMA_VERSION);
		ret = -EPROTO;
		goto rollback_quiet;
	}
	if (version < 1) {
		rc = sqlite3_exec(r->db, schema_v1, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail_rollback;
	}

	rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail_rollback;
	return 0;

fail_rollback:
	ret = sqlite_to_errno(rc);
rollback:
	snprintf(err, errlen, "registry schema setup failed: %s", sqlite3_errmsg(r->db));
rollback_quiet:
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return ret ? ret : -EIO;
fail:
	snprintf(err, errlen, "registry schema setup failed: %s", sqlite3_errmsg(r->db));
	return sqlite_to_errno(rc) ? sqlite_to_errno(rc) : -EIO;
}

int registry_open(struct registry **out, const char *path, char *err, size_t errlen)
{
	struct registry *r;
	int rc, ret;

	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open registry %s: %s", path,
			 r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		ret = sqlite_to_errno(rc) ? sqlite_to_errno(rc) : -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(r->db, REGISTRY_BUSY_TIMEOUT_MS);
	sqlite3_exec(r->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);

	ret = registry_migrate(r, err, errlen);
	if (ret)
		goto fail;
	*out = r;
	return 0;

fail:
	sqlite3_close(r->db);
	free(r);
	return ret;
}

void registry_close(struct registry *r)
{
	if (!r)
		return;
	sqlite3_close(r->db);
	free(r);
}

const char *registry_errmsg(struct registry *r)
{
	return sqlite3_errmsg(r->db);
}

/* Run a statement that returns no rows; returns 0 or a negative errno. */
static int registry_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : (sqlite_to_errno(rc) ? sqlite_to_errno(rc) : -EIO);
}

static int registry_insert_disks(struct registry *r, const struct vm_def *def)
{
	for (size_t i = 0; i < def->ndisks; i++) {
		sqlite3_stmt *st;
		int rc, ret;

		rc = sqlite3_prepare_v2(r->db,
					"INSERT INTO disks (vm, position, path, readonly) "
					"VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL);
		if (rc != SQLITE_OK)
			return sqlite_to_errno(rc);
		sqlite3_bind_text(st, 1, def->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, def->disks[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, def->disks[i].readonly);
		ret = registry_step_done(st);
		if (ret)
			return ret;
	}
	return 0;
}

int registry_vm_add(struct registry *r, const struct vm_def *def)
{
	sqlite3_stmt *st;
	int rc, ret;

	rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);

	rc = sqlite3_prepare_v2(r->db,
				"INSERT INTO vms (name, ram_mib, cpus, kernel, initrd, cmdline, "
				"created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		ret = sqlite_to_errno(rc);
		goto rollback;
	}
	sqlite3_bind_text(st, 1, def->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)def->ram_mib);
	sqlite3_bind_int(st, 3, (int)def->cpus);
	sqlite3_bind_text(st, 4, def->kernel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, def->initrd, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, def->cmdline, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, def->created);
	ret = registry_step_done(st);
	if (ret)
		goto rollback;

	ret = registry_insert_disks(r, def);
	if (ret)
		goto rollback;

	rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		ret = sqlite_to_errno(rc);
		goto rollback;
	}
	return 0;

rollback:
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return ret ? ret : -EIO;
}

static void copy_column(char *dst, size_t len, sqlite3_stmt *st, int col)
{
	const unsigned char *text = sqlite3_column_text(st, col);

	snprintf(dst, len, "%s", text ? (const char *)text : "");
}

static void registry_row_to_def(sqlite3_stmt *st, struct vm_def *def)
{
	memset(def, 0, sizeof(*def));
	copy_column(def->name, sizeof(def->name), st, 0);
	def->ram_mib = (uint64_t)sqlite3_column_int64(st, 1);
	def->cpus = (unsigned)sqlite3_column_int(st, 2);
	copy_column(def->kernel, sizeof(def->kernel), st, 3);
	copy_column(def->initrd, sizeof(def->initrd), st, 4);
	copy_column(def->cmdline, sizeof(def->cmdline), st, 5);
	def->created = sqlite3_column_int64(st, 6);
	def->last_exit = sqlite3_column_int(st, 7);
	def->last_exit_time = sqlite3_column_int64(st, 8);
}

static int registry_load_disks(struct registry *r, struct vm_def *def)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(r->db,
				"SELECT path, readonly FROM disks WHERE vm = ?1 ORDER BY position",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	sqlite3_bind_text(st, 1, def->name, -1, SQLITE_STATIC);

	def->ndisks = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && def->ndisks < VM_DISKS_MAX) {
		struct vm_disk *d = &def->disks[def->ndisks++];

		copy_column(d->path, sizeof(d->path), st, 0);
		d->readonly = sqlite3_column_int(st, 1) != 0;
	}
	sqlite3_finalize(st);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : sqlite_to_errno(rc);
}

#define VM_COLUMNS "name, ram_mib, cpus, kernel, initrd, cmdline, created, last_exit, last_exit_time"

int registry_vm_get(struct registry *r, const char *name, struct vm_def *def)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(r->db, "SELECT " VM_COLUMNS " FROM vms WHERE name = ?1", -1, &st,
				NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		registry_row_to_def(st, def);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sqlite_to_errno(rc) ? sqlite_to_errno(rc) : -EIO;
	return registry_load_disks(r, def);
}

int registry_vm_remove(struct registry *r, const char *name)
{
	sqlite3_stmt *st;
	int rc, ret;

	rc = sqlite3_prepare_v2(r->db, "DELETE FROM vms WHERE name = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	ret = registry_step_done(st);
	if (ret)
		return ret;
	return sqlite3_changes(r->db) ? 0 : -ENOENT;
}

int registry_vm_set_exit(struct registry *r, const char *name, int status, int64_t when)
{
	sqlite3_stmt *st;
	int rc, ret;

	rc = sqlite3_prepare_v2(r->db,
				"UPDATE vms SET last_exit = ?2, last_exit_time = ?3 WHERE name = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_to_errno(rc);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, status);
	sqlite3_bind_int64(st, 3, when);
	ret = registry_step_done(st);
	if (ret)
		return ret;
	return sqlite3_changes(r->db) ? 0 : -ENOENT;
}

int registry_vm_foreach(struct registry *r, int (*fn)(const struct vm_def *def, void *arg),
			void *arg)
{
	struct vm_def *def;
	sqlite3_stmt *st;
	int rc, ret = 0;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(r->db, "SELECT " VM_COLUMNS " FROM vms ORDER BY name", -1, &st,
				NULL);
	if (rc != SQLITE_OK) {
		free(def);
		return sqlite_to_errno(rc);
	}

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		registry_row_to_def(st, def);
		ret = registry_load_disks(r, def);
		if (!ret)
			ret = fn(def, arg);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sqlite_to_errno(rc) ? sqlite_to_errno(rc) : -EIO;
	sqlite3_finalize(st);
	free(def);
	return ret;
}
