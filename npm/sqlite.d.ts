import type { FhirKeyValueStore } from "./index.js";

/**
 * A durable store in `dir` (SQLite through better-sqlite3, WAL, synchronous commits). The
 * directory is held by one process (`lock`, default true); threads of that process open more
 * connections with `lock: false`. `durable: false` skips fsync, for a scratch store.
 */
export function openSqliteStore(dir: string, options?: { lock?: boolean; durable?: boolean }): Promise<FhirKeyValueStore & { close(): void }>;
