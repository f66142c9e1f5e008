// A durable store for the FHIR service in Node: one SQLite table of keys and values
// (WITHOUT ROWID, ordered by key) through better-sqlite3. Each engine transaction is one SQLite
// transaction in WAL mode with synchronous=FULL, so a write that was acknowledged survives a
// crash or a kill, a half-done one is never seen, and readers on other connections (the
// worker threads of `hearth serve`) read beside a writer.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * Opens (or creates) the store in `dir`.
 *
 * The directory is held by one process at a time (a lock file, `hearth.lock`, held until
 * `close()` or the process ends): a second process fails at once with a clear error. Threads of
 * the process that holds it open more connections with `{ lock: false }`; each engine
 * transaction is then a SQLite transaction of its own (`BEGIN IMMEDIATE` for writes), so
 * readers see one consistent state and writers are serialised.
 *
 * @param {string} dir
 * @param {{ lock?: boolean, durable?: boolean }} [options] `lock` (default true): take the
 *   directory's lock; `durable` (default true): `synchronous=FULL`; false for a scratch store.
 * @returns {Promise<{ get: Function, scan: Function, commit: Function, begin: Function, end: Function, reset: Function, close: Function }>}
 */
export async function openSqliteStore(dir, { lock = true, durable = true } = {}) {
  let Database;
  try {
    ({ default: Database } = await import("better-sqlite3"));
  } catch (err) {
    throw new Error(`the on-disk store needs the npm package better-sqlite3 (npm install better-sqlite3@12): ${err.message}`);
  }
  mkdirSync(dir, { recursive: true });
  // The lock: an exclusive SQLite lock on a file of its own, which the operating system
  // releases when the process ends, however it ends.
  let lockDb = null;
  if (lock) {
    lockDb = new Database(join(dir, "hearth.lock"), { timeout: 0 });
    try {
      lockDb.pragma("locking_mode = EXCLUSIVE");
      lockDb.exec("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS held (at TEXT); COMMIT");
    } catch (err) {
      lockDb.close();
      if (err.code === "SQLITE_BUSY") throw new Error(`the store in ${dir} is in use by another process (stop it first)`);
      throw err;
    }
  }
  const db = new Database(join(dir, "hearth.sqlite"), { timeout: 10000 });
  try {
    db.pragma("journal_mode = WAL");
    db.pragma(durable ? "synchronous = FULL" : "synchronous = OFF");
    // The holder of the lock creates the table; other connections of its process find it.
    if (lock) db.exec("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID; COMMIT");
  } catch (err) {
    db.close();
    lockDb?.close();
    throw err;
  }
  const getStmt = db.prepare("SELECT v FROM kv WHERE k = ?");
  const scans = {
    ascBounded: db.prepare("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k ASC LIMIT ?"),
    ascOpen: db.prepare("SELECT k, v FROM kv WHERE k >= ? ORDER BY k ASC LIMIT ?"),
    descBounded: db.prepare("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT ?"),
    descOpen: db.prepare("SELECT k, v FROM kv WHERE k >= ? ORDER BY k DESC LIMIT ?"),
  };
  for (const statement of Object.values(scans)) statement.raw(true);
  const put = db.prepare("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v");
  const remove = db.prepare("DELETE FROM kv WHERE k = ?");
  const commitAll = db.transaction((writes) => {
    for (const [key, value] of writes) {
      if (value === undefined) remove.run(Buffer.from(key));
      else put.run(Buffer.from(key), Buffer.from(value));
    }
  });
  const bytes = (buffer) => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  // Engine transactions may nest (a read inside a write); the outermost one is SQLite's.
  let depth = 0;
  return {
    get(key) {
      const row = getStmt.get(Buffer.from(key));
      return row ? bytes(row.v) : undefined;
    },
    scan(start, end, limit, reverse) {
      const statement = reverse ? (end ? scans.descBounded : scans.descOpen) : end ? scans.ascBounded : scans.ascOpen;
      const args = end ? [Buffer.from(start), Buffer.from(end), limit] : [Buffer.from(start), limit];
      return statement.all(...args).map(([key, value]) => [bytes(key), bytes(value)]);
    },
    commit(writes) {
      // Inside begin/end this is a savepoint; the writes are durable at end().
      commitAll(writes);
    },
    begin(write) {
      if (depth === 0) {
        // A transaction left by an engine that failed mid-way is not continued.
        if (db.inTransaction) db.exec("ROLLBACK");
        db.exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
      }
      depth += 1;
    },
    /** Ends whatever transaction an engine that failed (a Wasm trap) left open, writing none of it. */
    reset() {
      depth = 0;
      if (db.inTransaction) db.exec("ROLLBACK");
    },
    end() {
      if (depth === 0) return;
      depth -= 1;
      if (depth === 0 && db.inTransaction) {
        try {
          db.exec("COMMIT");
        } catch (err) {
          if (db.inTransaction) db.exec("ROLLBACK");
          throw err;
        }
      }
    },
    close() {
      db.close();
      lockDb?.close();
    },
  };
}
