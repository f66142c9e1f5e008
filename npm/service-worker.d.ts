import type { FhirStore, FhirStoreOptions } from "./index.js";

export { FhirStore };

/**
 * Answers the fetches of this Service Worker's pages under `prefix` (default "/fhir") from the
 * IndexedDB store `name` (default "hearth-fhir"); call it at the top level of the worker.
 * @example
 * import { serveFhir } from "hearth-fhir/service-worker";
 * serveFhir({ prefix: "/fhir", name: "my-app" });
 */
export function serveFhir(options?: { prefix?: string; name?: string } & Omit<FhirStoreOptions, "name" | "memory" | "path" | "store">): { readonly store: Promise<FhirStore> };
