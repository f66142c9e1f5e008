// Entry for Node: reads the Wasm module from the package directory and instantiates it once.
import { readFile } from "node:fs/promises";
import { initSync } from "../dist/wasm/hearth.js";

initSync({ module: await readFile(new URL("../dist/wasm/hearth_bg.wasm", import.meta.url)) });

import { hosts } from "./store.js";

// FhirStore.open({ path }) opens the SQLite store `hearth serve` uses.
hosts.openPathStore = async (dir) => (await import("./sqlite-store.js")).openSqliteStore(dir);

export * from "./api.js";
export { FhirStore } from "./store.js";
