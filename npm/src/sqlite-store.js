// A durable store for the FHIR service in Node: one SQLite table of keys and values
// (WITHOUT ROWID, ordered by key) through better-sqlite3. Each commit is one SQLite
// transaction in WAL mode with synchronous=FULL, so a write that was acknowledged survives a
// crash or a kill, and a half-done one is never seen.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * Opens (or creates) the store in `dir`.
 * @param {string} dir
 * @returns {Promise<{ get: Function, scan: Function, commit: Function, close: Function }>}
 */
export async function openSqliteStore(dir) {
  let Database;
  try {
    ({ default: Database } = await import("better-sqlite3"));
  } catch (err) {
    throw new Error(`the on-disk store needs the npm package better-sqlite3 (npm install better-sqlite3@12): ${err.message}`);
  }
  mkdirSync(dir, { recursive: true });
  const db = new Database(join(dir, "hearth.sqlite"));
  // One process at a time: the engine checks versions inside a transaction it runs in this
  // process, so a second writer could interleave. The exclusive lock, taken by a first write
  // and held until close, makes a second process fail at once with a clear error instead.
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID; COMMIT");
  } catch (err) {
    db.close();
    if (err.code === "SQLITE_BUSY") throw new Error(`the store in ${dir} is in use by another process (stop it first)`);
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
      commitAll(writes);
    },
    close() {
      db.close();
    },
  };
}
