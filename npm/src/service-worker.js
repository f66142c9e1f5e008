// A FHIR endpoint inside a Service Worker: every fetch under `prefix` is answered from an
// IndexedDB FhirStore, so FHIR clients of the page keep working offline. Service Workers allow
// no top-level await, so the Wasm module is instantiated on the first request; it is kept in
// the Cache API at install, so that a worker restarted while offline still has it.
import init from "../dist/wasm/hearth.js";
import { FhirStore } from "./store.js";

export { FhirStore };

const WASM_URL = new URL("../dist/wasm/hearth_bg.wasm", import.meta.url);
const WASM_CACHE = "hearth-fhir-wasm";
let instantiating;

/** The Wasm module from the cache (or the network, when it is not cached yet). */
async function wasmSource() {
  if (typeof caches !== "undefined") {
    const cached = await caches.match(WASM_URL.href).catch(() => undefined);
    if (cached) return cached;
  }
  return fetch(WASM_URL);
}

function instantiate() {
  instantiating ??= wasmSource()
    .then((source) => init({ module_or_path: source }))
    .catch((err) => {
      instantiating = undefined;
      throw err;
    });
  return instantiating;
}

/**
 * Answers the fetches of this Service Worker's pages under `prefix` (same origin) with the REST
 * API of the IndexedDB store `name`; other fetches are left to the network and other handlers.
 * Call it at the top level of the worker script.
 *
 * @param {{ prefix?: string, name?: string, baseUrl?: string, profiles?: object, validation?: boolean,
 *   limits?: Record<string, number> }} [options] `prefix` (default "/fhir"); `name` of the IndexedDB
 *   store (default "hearth-fhir"); the other options as {@link FhirStore.open}.
 * @returns {{ readonly store: Promise<FhirStore> }} the store, opened on first use.
 * @example
 * // sw.js
 * import { serveFhir } from "hearth-fhir/service-worker";
 * serveFhir({ prefix: "/fhir", name: "my-app" });
 */
export function serveFhir({ prefix = "/fhir", name = "hearth-fhir", ...options } = {}) {
  const scope = globalThis;
  const path = "/" + String(prefix).replace(/^\/+|\/+$/g, "");
  const baseUrl = new URL(path, scope.location.origin).href;
  let opening;
  const open = () => {
    opening ??= instantiate()
      .then(() => FhirStore.open({ ...options, name, baseUrl }))
      .catch((err) => {
        opening = undefined;
        throw err;
      });
    // A store closed under the worker (its database deleted by a page, as at a sign-out, or
    // opened at a newer version) is opened again for the next request.
    return opening.then((store) => {
      if (store.closed === undefined) return store;
      opening = undefined;
      opening = instantiate()
        .then(() => FhirStore.open({ ...options, name, baseUrl }))
        .catch((err) => {
          opening = undefined;
          throw err;
        });
      return opening;
    });
  };
  scope.addEventListener("install", (event) => {
    scope.skipWaiting?.();
    if (typeof caches !== "undefined") event.waitUntil(caches.open(WASM_CACHE).then((cache) => cache.add(WASM_URL.href)));
  });
  scope.addEventListener("activate", (event) => event.waitUntil(scope.clients.claim()));
  scope.addEventListener("fetch", (event) => {
    const url = new URL(event.request.url);
    if (url.origin !== scope.location.origin) return;
    if (url.pathname !== path && !url.pathname.startsWith(path + "/")) return;
    event.respondWith(
      open().then(
        (store) => store.fetch(event.request),
        (err) =>
          new Response(JSON.stringify(err.outcome ?? { resourceType: "OperationOutcome", issue: [{ severity: "error", code: "exception", diagnostics: String(err.message) }] }), {
            status: err.status ?? 500,
            headers: { "Content-Type": "application/fhir+json; charset=utf-8" },
          }),
      ),
    );
  });
  return {
    get store() {
      return open();
    },
  };
}
