// Entry for Node: reads the Wasm module from the package directory and instantiates it once.
import { readFile } from "node:fs/promises";
import { initSync } from "../dist/wasm/hearth.js";

initSync({ module: await readFile(new URL("../dist/wasm/hearth_bg.wasm", import.meta.url)) });

export * from "./api.js";
