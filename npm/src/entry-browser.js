// Entry for browsers, web workers and bundlers: fetches and instantiates the Wasm module once.
import init from "../dist/wasm/hearth.js";

await init({ module_or_path: new URL("../dist/wasm/hearth_bg.wasm", import.meta.url) });

export * from "./api.js";
export { FhirStore } from "./store.js";
