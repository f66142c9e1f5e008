// Entry for workerd (Cloudflare Workers): workerd compiles no Wasm at run time, so the module
// arrives precompiled through the import below (wrangler's default rule for .wasm imports).
import { initSync } from "../dist/wasm/hearth.js";
import wasmModule from "../dist/wasm/hearth_bg.wasm";

initSync({ module: wasmModule });

export * from "./api.js";
export { FhirStore } from "./store.js";
