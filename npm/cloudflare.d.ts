// Types for Cloudflare Workers projects, against @cloudflare/workers-types (list it in
// compilerOptions.types, as `wrangler types` or the Workers templates do).
import type { DurableObject } from "cloudflare:workers";
import type { FhirKeyValueStore } from "./index.js";

/** What `FhirDurableObject` and the router read from the worker's environment. */
export interface HearthEnv {
  /** The Durable Object namespace of `FhirDurableObject` (for the default router). */
  HEARTH: DurableObjectNamespace;
  /** The SMART authorization server whose access tokens are required. */
  HEARTH_ISSUER?: string;
  /** The `aud` tokens must carry, naming the tenant as `{tenant}` (default: the tenant's base URL). */
  HEARTH_AUDIENCE?: string;
  /** The issuer's JWKS, when its configuration does not name it. */
  HEARTH_JWKS?: string;
  /** A roles file's JSON, for `user/` scopes. */
  HEARTH_ROLES?: string;
  /** `"true"`: answer without authorization (no issuer); for `.dev.vars` under `wrangler dev`. */
  HEARTH_NO_AUTH?: string;
  /** The tenants served, comma-separated; others are 404. */
  HEARTH_TENANTS?: string;
  /** Web origins whose pages may call the service, comma-separated. */
  HEARTH_ALLOW_ORIGINS?: string;
}

/** The engine's store over a Durable Object's SQLite storage (`ctx.storage`). */
export function durableObjectStore(storage: DurableObjectStorage): FhirKeyValueStore;

/**
 * One tenant's FHIR service in a Durable Object (SQLite storage): the REST API of
 * `hearth serve` under `/fhir/<tenant>/`, each interaction in one storage transaction, with
 * SMART authorization and an audit trail when `HEARTH_ISSUER` is set.
 */
export class FhirDurableObject extends DurableObject<HearthEnv> {
  constructor(ctx: DurableObjectState, env: HearthEnv);
  /** The engine's store over `storage`; a subclass may wrap it. */
  makeStore(storage: DurableObjectStorage): FhirKeyValueStore;
  fetch(request: Request): Promise<Response>;
}

/** Routes `/fhir/<tenant>/...` to the tenant's `FhirDurableObject` through the binding `HEARTH`. */
declare const router: ExportedHandler<HearthEnv>;
export default router;
