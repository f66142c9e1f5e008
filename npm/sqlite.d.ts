import type { FhirStore } from "./index.js";

/** A durable store in `dir` (SQLite through better-sqlite3, WAL, synchronous commits). */
export function openSqliteStore(dir: string): Promise<FhirStore & { close(): void }>;
