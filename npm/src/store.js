// FhirStore: the whole FHIR service over one store, as a JS API and as a Fetch API function.
// Every method is a REST request to the engine's handler, so the JS API and `store.fetch`
// answer the same request the same way; this file only builds requests and reads answers.

import * as wasm from "../dist/wasm/hearth.js";
import { FhirError, errorOutcome, toFhirError } from "./error.js";
import { engine, isTrap, restartEngine, toBytes, describe, jsonText } from "./engine.js";
import { FhirProfiles, LIMIT_NAMES, evaluate as evaluateOn } from "./api.js";
import { TokenVerifier } from "./auth.js";

const DEFAULT_BASE = "https://hearth.local/fhir";
const FHIR_JSON = "application/fhir+json";

/** Hooks the host entry fills in (Node: the SQLite store). */
export const hosts = { openPathStore: undefined };

function invalid(diagnostics, status = 400, code = "invalid") {
  return new FhirError(diagnostics, { status, outcome: errorOutcome(code, diagnostics) });
}

function isBundle(value) {
  return value !== null && typeof value === "object" && value.resourceType === "Bundle";
}

/** Search parameters as `[name, value]` pairs, from an object, URLSearchParams, pairs or a string. */
function queryPairs(params) {
  if (params === undefined || params === null) return [];
  if (typeof params === "string") return [...new URLSearchParams(params.replace(/^\?/, ""))];
  if (params instanceof URLSearchParams) return [...params];
  if (Array.isArray(params)) return params.map(([name, value]) => [String(name), String(value)]);
  if (typeof params === "object") {
    const pairs = [];
    for (const [name, value] of Object.entries(params)) {
      if (value === undefined) continue;
      for (const item of Array.isArray(value) ? value : [value]) pairs.push([name, String(item)]);
    }
    return pairs;
  }
  throw invalid(`expected search parameters as an object, URLSearchParams, [name, value] pairs or a query string, found ${describe(params)}`);
}

function checkType(type) {
  if (typeof type !== "string" || !/^[A-Z][A-Za-z]*$/.test(type)) {
    throw invalid(`expected a resource type such as "Patient", found ${typeof type === "string" ? JSON.stringify(type) : describe(type)}`);
  }
}

function checkId(id) {
  if (typeof id !== "string" || id === "") throw invalid(`expected a resource id as a non-empty string, found ${describe(id)}`);
}

/** `W/"3"` from 3, "3" or an ETag. */
function etagOf(version) {
  const text = String(version);
  return /^(W\/)?"/.test(text) ? text : `W/"${text}"`;
}

/**
 * A FHIR R4 service over one store: IndexedDB in a tab, a dedicated worker or a Service Worker;
 * SQLite in Node (`path`); or memory anywhere. Every method answers as the REST API would (the
 * same validation, search and transactions as `hearth serve`), and failures are
 * {@link FhirError}s carrying the OperationOutcome and the HTTP status.
 *
 * @example
 * const store = await FhirStore.open({ name: "my-app" });
 * const patient = await store.create({ resourceType: "Patient", name: [{ family: "Chalmers" }] });
 * const bundle = await store.search("Patient", { family: "chalmers" });
 * const response = await store.fetch(`Patient/${patient.id}`); // a Fetch API Response
 */
export class FhirStore {
  #service;
  #options;
  #generation;
  #queue = Promise.resolve();
  /** Whether the request in flight waits for its transaction to commit (IndexedDB). */
  #committing = false;
  /** Work to do once the request in flight waits for its commit, if it comes to that. */
  #onCommitting;
  /** Why reading a Bundle ahead failed the engine, which is restarted after the request. */
  #failedAhead;
  #listeners = new Set();
  #conflictListeners = new Set();
  #syncing = Promise.resolve();
  /** The remote of the last sync, for `conflicts()` and `resolve()` without one. */
  #remote;
  #channel;
  #closed;
  #base;

  /** @internal Use {@link FhirStore.open}. */
  constructor(service, options) {
    this.#service = service;
    this.#options = options;
    this.#generation = engine.generation;
    this.#base = new URL(options.baseUrl.replace(/\/+$/, "") + "/");
    if (options.name !== undefined && typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(`hearth-fhir:${options.name}`);
      this.#channel.onmessage = (event) => {
        for (const change of event.data?.changes ?? []) this.#emit({ ...change, remote: true });
      };
    }
  }

  /**
   * Opens a store.
   *
   * @param {{ name?: string, memory?: boolean, path?: string, store?: object, baseUrl?: string,
   *   profiles?: FhirProfiles | Iterable<object | string>, validation?: boolean,
   *   limits?: Record<string, number>, auth?: { issuer: string, audience?: string, jwks?: string,
   *   roles?: object | string, audit?: boolean } }} options
   *   `name`: an IndexedDB database (where `indexedDB` exists); `memory: true`: in memory;
   *   `path`: a directory of the SQLite store `hearth serve` uses (Node); `store`: a store object
   *   of your own (`get`, `scan`, `commit`, optionally `begin`/`end`; its methods may answer
   *   Promises). `baseUrl` (default `https://hearth.local/fhir`) is where `fetch` answers and
   *   what `Location` and bundle links start with. `profiles` are checked on writes;
   *   `validation: false` stores resources after reading them, without checking them.
   *   `auth`: `fetch` then answers only requests with an access token of `issuer` (a JWT,
   *   RS256 or ES256, for `audience`, by default the base URL), limited to what its scopes
   *   reach and recorded as AuditEvents; `roles` is a roles file for `user/` scopes. The
   *   store's own methods (`read`, `create`, ...) are the trusted caller's and are not limited.
   * @returns {Promise<FhirStore>}
   * @throws {FhirError} when the store cannot be opened (IndexedDB missing, blocked by another
   *   tab holding an older version open, a newer schema).
   */
  static async open(options = {}) {
    if (options === null || typeof options !== "object") throw invalid(`expected options as an object, found ${describe(options)}`);
    const { name, memory, path, store, baseUrl = DEFAULT_BASE, profiles, validation = true, limits = {}, auth } = options;
    const kinds = [name !== undefined && "name", memory && "memory", path !== undefined && "path", store !== undefined && "store"].filter(Boolean);
    if (kinds.length !== 1) {
      throw invalid(`expected exactly one of name (IndexedDB), memory: true, path (SQLite in Node) or store, found ${kinds.length ? kinds.join(" and ") : "none"}`);
    }
    for (const limit of Object.keys(limits)) {
      if (!LIMIT_NAMES.includes(limit)) throw invalid(`unknown limit "${limit}"; the limits are ${LIMIT_NAMES.join(", ")}`);
    }
    try {
      new URL(baseUrl);
    } catch {
      throw invalid(`expected baseUrl as an absolute URL, found ${JSON.stringify(baseUrl)}`);
    }
    if (auth !== undefined && (auth === null || typeof auth !== "object" || typeof auth.issuer !== "string")) {
      throw invalid("expected auth as { issuer, audience?, jwks?, roles?, audit? }");
    }
    const roles = auth?.roles === undefined ? undefined : typeof auth.roles === "string" ? auth.roles : JSON.stringify(auth.roles);
    const settings = { name, memory, path, store, baseUrl: String(baseUrl).replace(/\/+$/, ""), profiles, validation: validation !== false, limits, auth, roles };
    if (auth !== undefined) {
      try {
        settings.verifier = new TokenVerifier({ issuer: auth.issuer, audience: auth.audience ?? settings.baseUrl, jwks: auth.jwks });
      } catch (err) {
        throw invalid(err.message);
      }
    }
    const service = await FhirStore.#makeService(settings);
    return new FhirStore(service, settings);
  }

  static async #makeService(settings) {
    const { name, path, baseUrl, profiles, limits } = settings;
    let service;
    try {
      if (name !== undefined) {
        if (typeof name !== "string" || name === "") throw invalid(`expected name as a non-empty string, found ${describe(name)}`);
        if (typeof indexedDB === "undefined") {
          throw invalid("IndexedDB is not available here; open the store with { memory: true }, or { path } in Node", 501, "not-supported");
        }
        service = await wasm.FhirService.openIndexedDb(name, baseUrl);
      } else if (path !== undefined && !settings.ownsStore) {
        if (hosts.openPathStore === undefined) throw invalid("a store on a path needs Node (it is the SQLite store of hearth serve)", 501, "not-supported");
        settings.store = await hosts.openPathStore(String(path));
        settings.ownsStore = true;
        service = new wasm.FhirService(settings.store, baseUrl);
      } else {
        service = new wasm.FhirService(settings.store, baseUrl);
      }
      service.setLimits(...LIMIT_NAMES.map((limit) => (limits[limit] === undefined ? Number.NaN : Number(limits[limit]))));
      service.setPolicy(baseUrl, ["*"], ["*"]);
      service.setAccess(settings.roles, settings.auth?.audit !== false);
      if (profiles !== undefined) {
        const sources = profiles instanceof FhirProfiles ? profiles.sources : [...profiles].map(toBytes);
        for (const source of sources) service.addProfile(source);
      }
    } catch (thrown) {
      throw toFhirError(thrown);
    }
    return service;
  }

  /** The base URL requests are answered under. */
  get baseUrl() {
    return this.#options.baseUrl;
  }

  /**
   * Answers one REST request; requests run one after another.
   * @param {string} method
   * @param {string} path relative to the base URL, without a query.
   * @param {{ query?: [string, string][], headers?: Record<string, string>, body?: Uint8Array | string,
   *   claims?: object }} [request] `claims`: verified claims of an access token
   *   (`{ scope, patient, fhirUser, clientId, sub, roles }`) the answer is limited to and
   *   recorded under; without them the request is the trusted caller's, answered in full.
   * @returns {Promise<{ status: number, headers: [string, string][], body: string }>}
   */
  async handle(method, path, { query = [], headers = {}, body, claims } = {}) {
    const run = this.#queue.then(() => this.#handleNow(method, path, query, headers, body, claims));
    this.#queue = run.catch(() => {});
    const answer = await run;
    if (answer.status < 300 && method !== "GET" && method !== "HEAD") this.#announce(String(method).toUpperCase(), path, answer, body);
    return answer;
  }

  async #handleNow(method, path, query, headers, body, claims) {
    if (this.#generation !== engine.generation) {
      try {
        await this.#restart();
      } catch (err) {
        const failed = toFhirError(err);
        return outcomeAnswer(failed.status, "exception", `the engine was restarted and the store could not be opened again: ${failed.message}`);
      }
    }
    if (this.#closed) return outcomeAnswer(503, "exception", this.#closed);
    const reason = this.#service?.closedReason?.();
    if (reason) return outcomeAnswer(503, "exception", reason);
    const flat = [];
    for (const [name, value] of query) flat.push(String(name), String(value));
    const headerList = [];
    for (const [name, value] of Object.entries(headers)) headerList.push(String(name).toLowerCase(), String(value));
    if (!this.#options.validation && !("x-validation" in headers)) headerList.push("x-validation", "off");
    const bytes = body === undefined ? new Uint8Array() : typeof body === "string" ? new TextEncoder().encode(body) : body;
    try {
      return await this.#drive(() => this.#service.start(String(method).toUpperCase(), path, flat, headerList, bytes, claims));
    } catch (err) {
      return { status: err.status, headers: [["Content-Type", `${FHIR_JSON}; charset=utf-8`]], body: JSON.stringify(err.outcome) };
    }
  }

  /**
   * Runs an engine operation that `start` begins (a PendingRequest) to its answer. The engine
   * runs only inside the synchronous `poll` calls, so that a trap is thrown here, and then
   * the engine is restarted. Failures are thrown as FhirErrors.
   */
  async #drive(start) {
    try {
      const pending = start();
      for (;;) {
        const step = pending.poll();
        if (step.answer !== undefined) return step.answer;
        this.#committing = step.committing === true;
        if (this.#committing && this.#onCommitting !== undefined) {
          const work = this.#onCommitting;
          this.#onCommitting = undefined;
          work();
        }
        await step.wait;
      }
    } catch (thrown) {
      if (isTrap(thrown)) {
        restartEngine(`the Wasm module failed (${thrown.message})`);
        // A store transaction the engine held is rolled back now (SQLite), or by the browser.
        this.#options.store?.reset?.();
        throw new FhirError(`the engine failed and was restarted; the request was not completed, and what it had not committed was rolled back (${thrown.message})`, {
          status: 500,
          outcome: errorOutcome("exception", `the engine failed and was restarted; the request was not completed, and what it had not committed was rolled back (${thrown.message})`),
        });
      }
      throw toFhirError(thrown);
    } finally {
      this.#committing = false;
      if (this.#failedAhead !== undefined) {
        // A Bundle read ahead failed the engine meanwhile (see #prepare).
        const reason = this.#failedAhead;
        this.#failedAhead = undefined;
        if (this.#generation === engine.generation) {
          restartEngine(reason);
          this.#options.store?.reset?.();
        }
      }
    }
  }

  /** Runs `start` (an engine operation) in turn with the store's requests. */
  async #inTurn(start) {
    const run = this.#queue.then(async () => {
      if (this.#generation !== engine.generation) await this.#restart();
      if (this.#closed) throw new FhirError(this.#closed, { status: 503, outcome: errorOutcome("exception", this.#closed) });
      const reason = this.#service?.closedReason?.();
      if (reason) throw new FhirError(reason, { status: 503, outcome: errorOutcome("exception", reason) });
      return this.#drive(() => start(this.#service));
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** After an engine restart: the same store through a fresh instance (memory is lost). */
  async #restart() {
    if (this.#options.memory) {
      this.#generation = engine.generation;
      this.#closed = "the in-memory store was lost when the engine failed; open a new FhirStore";
      return;
    }
    this.#options.store?.reset?.();
    // The store object is kept (a SQLite store holds its directory's lock); IndexedDB reopens.
    this.#service = await FhirStore.#makeService(this.#options);
    this.#generation = engine.generation;
  }

  /** Calls the API: the parsed body of a success, a FhirError for a failure. */
  async #call(method, path, options) {
    const answer = await this.handle(method, path, options);
    const body = answer.body ? JSON.parse(answer.body) : undefined;
    if (answer.status >= 400) {
      const outcome = body?.resourceType === "OperationOutcome" ? body : errorOutcome("exception", `status ${answer.status}`);
      const diagnostics = outcome.issue?.map((issue) => issue.diagnostics).filter(Boolean).join("; ") || `status ${answer.status}`;
      throw new FhirError(diagnostics, { status: answer.status, outcome });
    }
    return body;
  }

  /**
   * Creates a resource (a new id is assigned); resolves to the stored resource.
   * @template {{ resourceType: string }} R
   * @param {R} resource
   * @param {{ ifNoneExist?: string | Record<string, string> }} [options] conditional create.
   * @returns {Promise<R>}
   */
  async create(resource, { ifNoneExist } = {}) {
    const type = resourceTypeOf(resource);
    const headers = { "content-type": FHIR_JSON };
    if (ifNoneExist !== undefined) {
      headers["if-none-exist"] = queryPairs(ifNoneExist)
        .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
        .join("&");
    }
    return this.#call("POST", type, { headers, body: toBytes(resource) });
  }

  /** Reads the current version. @returns {Promise<object>} @throws {FhirError} 404, 410 when deleted. */
  async read(type, id) {
    checkType(type);
    checkId(id);
    return this.#call("GET", `${type}/${encodeURIComponent(id)}`);
  }

  /** Reads one version. @returns {Promise<object>} */
  async vread(type, id, version) {
    checkType(type);
    checkId(id);
    return this.#call("GET", `${type}/${encodeURIComponent(id)}/_history/${encodeURIComponent(String(version))}`);
  }

  /**
   * Updates (or creates with the given id) a resource; with `ifMatch` (a version or ETag), only
   * if the stored version is that one, else a 412 FhirError.
   * @returns {Promise<object>} the stored resource.
   */
  async update(resource, { ifMatch } = {}) {
    const type = resourceTypeOf(resource);
    checkId(resource.id);
    const headers = { "content-type": FHIR_JSON };
    if (ifMatch !== undefined) headers["if-match"] = etagOf(ifMatch);
    return this.#call("PUT", `${type}/${encodeURIComponent(resource.id)}`, { headers, body: toBytes(resource) });
  }

  /**
   * Patches a resource with a JSON Patch (an array of operations) or a FHIRPath Patch (a
   * Parameters resource). @returns {Promise<object>} the patched resource.
   */
  async patch(type, id, patch, { ifMatch } = {}) {
    checkType(type);
    checkId(id);
    const json = Array.isArray(patch) || (typeof patch === "string" && patch.trimStart().startsWith("["));
    const headers = { "content-type": json ? "application/json-patch+json" : FHIR_JSON };
    if (ifMatch !== undefined) headers["if-match"] = etagOf(ifMatch);
    return this.#call("PATCH", `${type}/${encodeURIComponent(id)}`, { headers, body: toBytes(patch) });
  }

  /** Deletes a resource (its history stays). @returns {Promise<void>} */
  async delete(type, id) {
    checkType(type);
    checkId(id);
    await this.#call("DELETE", `${type}/${encodeURIComponent(id)}`);
  }

  /**
   * Searches one type (or all, with `type` undefined); resolves to a searchset Bundle whose
   * `next` link can be given to {@link FhirStore#fetch}.
   * @returns {Promise<object>}
   */
  async search(type, params) {
    if (type !== undefined && type !== null) checkType(type);
    return this.#call("GET", type ?? "", { query: queryPairs(params) });
  }

  /**
   * The history of a resource, a type, or the whole store.
   * @param {string} [type]
   * @param {string} [id]
   * @param {object} [params] `_count`, `_since`, `_at`.
   * @returns {Promise<object>} a history Bundle.
   */
  async history(type, id, params) {
    if (type !== undefined && type !== null) checkType(type);
    if (id !== undefined && id !== null) checkId(id);
    const path = type ? (id ? `${type}/${encodeURIComponent(id)}/_history` : `${type}/_history`) : "_history";
    return this.#call("GET", path, { query: queryPairs(params) });
  }

  /** Runs a transaction Bundle: all entries or none. @returns {Promise<object>} the response Bundle. */
  async transaction(bundle) {
    return this.#bundle(bundle, "transaction");
  }

  /** Runs a batch Bundle: each entry on its own. @returns {Promise<object>} the response Bundle. */
  async batch(bundle) {
    return this.#bundle(bundle, "batch");
  }

  async #bundle(bundle, type) {
    const value = typeof bundle === "string" ? JSON.parse(bundle) : bundle;
    if (!isBundle(value)) throw invalid(`expected a Bundle, found ${describe(value)}`);
    if (value.type !== type) throw invalid(`expected a Bundle of type "${type}", found type ${JSON.stringify(value.type)}`);
    return this.#call("POST", "", { headers: { "content-type": FHIR_JSON }, body: toBytes(value) });
  }

  /**
   * Validates a resource as a write would (base specification and loaded profiles, and
   * `profile` when given) without storing it; an invalid resource is a result, not an error.
   * @returns {Promise<object>} an OperationOutcome.
   */
  async validate(resource, { profile } = {}) {
    const type = resourceTypeOf(resource);
    const query = profile === undefined ? [] : [["profile", String(profile)]];
    return this.#call("POST", `${type}/$validate`, { query, headers: { "content-type": FHIR_JSON }, body: toBytes(resource) });
  }

  /**
   * Evaluates a FHIRPath expression over stored resources: one resource (`{ type, id }`), or each
   * match of a search (`{ type, params }`).
   * @returns {Promise<unknown[] | { resource: string, result: unknown[] }[]>} the result for one
   *   resource; for a search, one `{ resource: "Type/id", result }` per match.
   */
  async evaluate(expression, { type, id, params, variables } = {}) {
    if (id !== undefined) {
      const resource = await this.read(type, id);
      return evaluateOn(resource, expression, { variables });
    }
    const results = [];
    let bundle = await this.search(type, params);
    for (;;) {
      for (const entry of bundle.entry ?? []) {
        if (entry.search?.mode !== undefined && entry.search.mode !== "match") continue;
        const resource = entry.resource;
        results.push({ resource: `${resource.resourceType}/${resource.id}`, result: evaluateOn(resource, expression, { variables }) });
      }
      const next = bundle.link?.find((link) => link.relation === "next")?.url;
      if (!next) break;
      bundle = await this.#page(next);
    }
    return results;
  }

  /** The next page of a search: its Bundle, or a FhirError for a failure. */
  async #page(url) {
    const response = await this.fetch(url);
    const body = await response.json();
    if (!response.ok) {
      const outcome = body?.resourceType === "OperationOutcome" ? body : errorOutcome("exception", `status ${response.status}`);
      throw new FhirError(outcome.issue?.map((issue) => issue.diagnostics).filter(Boolean).join("; ") || `status ${response.status}`, { status: response.status, outcome });
    }
    return body;
  }

  /**
   * Imports resources: a Bundle (a transaction or batch is run as one; the resources of any
   * other kind are stored), an array of resources or Bundles, NDJSON text, or a stream, Blob or
   * async iterable of NDJSON. Resources with an id keep it. Stored in transactions of
   * `batchSize`; a failure reports which entry failed and keeps what was stored before it.
   *
   * @param {unknown} source
   * With `strict: false`, data from elsewhere is read leniently: a resource with elements R4
   * does not have (or other reading errors) is stored without them, and each such resource is
   * listed in `warnings` with its position and an OperationOutcome of what was left out.
   *
   * @param {{ onProgress?: (progress: { resources: number, bundles: number }) => void,
   *   signal?: AbortSignal, batchSize?: number, strict?: boolean }} [options]
   * @returns {Promise<{ resources: number, bundles: number, warnings: { entry: number, line?: number,
   *   bundleEntry?: number, outcome: object }[] }>}
   * @throws {FhirError} with `entry` (0-based position in the source; for NDJSON also `line`)
   *   when an entry can not be stored; `status` 499 with code `exception` when aborted.
   */
  async import(source, { onProgress, signal, batchSize = 500, strict = true } = {}) {
    const progress = { resources: 0, bundles: 0 };
    const warnings = [];
    // Lenient: each resource is read as far as it can be, and stored as read.
    const readable = (resource, position, line, bundleEntry) => {
      if (strict !== false || resource === null || typeof resource !== "object") return resource;
      const { value, outcome } = lenientRead(resource, position, line, bundleEntry);
      if (outcome !== undefined) warnings.push({ entry: position, ...(line !== undefined ? { line } : {}), ...(bundleEntry !== undefined ? { bundleEntry } : {}), outcome });
      return value;
    };
    let batch = [];
    // The batch being stored, if any. The next one is read and validated while it commits,
    // and is stored once it is: a failure stops the import there.
    let storing;
    const settle = async () => {
      const pending = storing;
      storing = undefined;
      await pending;
    };
    const flush = async () => {
      if (batch.length === 0) return;
      const items = batch;
      batch = [];
      const body = importBody(items);
      if (storing !== undefined) {
        this.#whileCommitting(() => this.#prepare(body));
        try {
          await settle();
        } finally {
          this.#onCommitting = undefined;
        }
      }
      storing = this.#importBatch(items, body).then(() => {
        progress.resources += items.length;
        onProgress?.({ ...progress });
      });
      // Its failure is thrown where it is settled; until then it is not an unhandled one.
      storing.catch(() => {});
    };
    // Every batch read so far, stored.
    const drain = async () => {
      await flush();
      await settle();
    };
    const checkAbort = async () => {
      if (signal?.aborted) {
        await settle();
        const diagnostics = `the import was aborted after ${progress.resources} resources and ${progress.bundles} bundles; those are stored`;
        const err = invalid(diagnostics, 499, "exception");
        err.progress = { ...progress };
        throw err;
      }
    };
    try {
      for await (const item of importItems(source)) {
        await checkAbort();
        const { value, position, line } = item;
        if (isBundle(value) && (value.type === "transaction" || value.type === "batch")) {
          await drain();
          const bundle =
            strict === false
              && Array.isArray(value.entry)
              ? { ...value, entry: value.entry.map((entry, inner) => (entry?.resource === undefined ? entry : { ...entry, resource: readable(entry.resource, position, line, inner) })) }
              : value;
          const response = await this.#call("POST", "", { headers: { "content-type": FHIR_JSON }, body: toBytes(bundle) }).catch((err) => {
            throw located(err, position, line);
          });
          if (value.type === "batch") {
            const failed = (response.entry ?? []).findIndex((entry) => !/^2/.test(entry.response?.status ?? ""));
            if (failed >= 0) {
              const err = invalid(`entry ${failed} of the batch Bundle failed: ${response.entry[failed].response?.status}`, 422, "processing");
              throw located(err, position, line);
            }
          }
          progress.bundles += 1;
          progress.resources += value.entry?.length ?? 0;
          onProgress?.({ ...progress });
          continue;
        }
        if (isBundle(value)) {
          // Another kind of Bundle (a collection, a document, a search result): its resources
          // are stored together, in one transaction, so that references between them by fullUrl
          // hold.
          await drain();
          // Each kept with its place in the Bundle, for the warnings.
          const entries = (value.entry ?? []).map((entry, inner) => [entry, inner]).filter(([entry]) => entry.resource !== undefined && entry.search?.mode !== "outcome");
          const transaction = {
            resourceType: "Bundle",
            type: "transaction",
            entry: entries.map(([entry, inner]) => ({ ...(entry.fullUrl ? { fullUrl: entry.fullUrl } : {}), ...importEntry({ value: readable(entry.resource, position, line, inner) }) })),
          };
          await this.#call("POST", "", { headers: { "content-type": FHIR_JSON }, body: toBytes(transaction) }).catch((err) => {
            throw located(err, position, line);
          });
          progress.bundles += 1;
          progress.resources += entries.length;
          onProgress?.({ ...progress });
          continue;
        }
        if (value === null || typeof value !== "object" || typeof value.resourceType !== "string") {
          throw located(invalid(`expected a FHIR resource, found ${describe(value)}`), position, line);
        }
        // A line's own text goes to the engine as written, read by the FHIR JSON rules: no
        // second writing of it, and decimals keep their digits (`1.50` stays `1.50`). Text
        // that is not well-formed Unicode (a lone surrogate from a string source) goes as
        // JSON.stringify writes it, so that the engine refuses it rather than it being changed
        // to U+FFFD on the way.
        let text = typeof item.text === "string" && wellFormed(item.text) ? item.text : undefined;
        let read = value;
        if (strict === false) {
          // Lenient: the line as written when it reads without warnings; otherwise as before,
          // the object JSON.parse made of it (duplicate keys resolved, `2.0` an integer), read
          // leniently with its warnings.
          if (text === undefined || !readsClean(text)) {
            text = undefined;
            read = readable(value, position, line);
          }
        }
        batch.push({ value: read, text, position, line });
        if (batch.length >= batchSize) {
          await flush();
          await checkAbort();
        }
      }
      await drain();
    } catch (failed) {
      // The batch still being stored comes first: its entries are before the one that failed
      // here, and its failure is the one reported. Nothing is left in flight once the import
      // has ended, and a batch read ahead that was never stored is not kept by the engine.
      try {
        await settle();
      } finally {
        this.#forgetPrepared();
      }
      throw failed;
    }
    return { ...progress, warnings };
  }

  /**
   * Runs `work` while the request in flight waits for its commit: now if it does, else when it
   * comes to that (the hook is cleared by whoever set it once the request has ended).
   */
  #whileCommitting(work) {
    if (this.#committing) work();
    else this.#onCommitting = work;
  }

  /**
   * Reads a transaction's body ahead of its request, while the store may be busy with
   * another: the request then takes what was read. When this fails, the request reads the
   * body itself (and meets the same failure).
   */
  #prepare(body) {
    if (this.#closed || this.#generation !== engine.generation || !this.#service) return;
    try {
      this.#service.prepare(body, Boolean(this.#options.validation));
    } catch (thrown) {
      // The engine is restarted once the request in flight has ended (which may meet the
      // failure too), not under it: its commit may already be stored.
      if (isTrap(thrown)) this.#failedAhead = `the Wasm module failed (${thrown.message})`;
    }
  }

  /** Lets the engine drop a Bundle read ahead that no request took. */
  #forgetPrepared() {
    if (this.#failedAhead !== undefined || this.#closed || this.#generation !== engine.generation || !this.#service) return;
    try {
      this.#service.prepare(new Uint8Array(), false);
    } catch {
      // Nothing was kept then either.
    }
  }

  /**
   * Stores resources in one transaction (`body`, the transaction Bundle of them all); on
   * failure, stores those before the failing one.
   */
  async #importBatch(items, body) {
    // The stored resources are not asked back: an import reads nothing of the answer.
    const commit = (list) =>
      this.#call("POST", "", {
        headers: { "content-type": FHIR_JSON, prefer: "return=minimal" },
        body: list === items ? body : importBody(list),
      });
    try {
      await commit(items);
      return;
    } catch (err) {
      if (!(err instanceof FhirError) || items.length === 1) {
        const item = items[0];
        throw located(err, item.position, item.line, item.inner);
      }
    }
    // Halve until the failing entry is found; each half that succeeds before it is stored,
    // once, in its own transaction (a failing transaction stores nothing).
    let stored = 0;
    let rest = items;
    for (;;) {
      if (rest.length === 1) {
        try {
          await commit(rest);
          // It passed on its own (it failed with another entry); go on with the next ones.
          stored += 1;
          if (stored === items.length) return;
          rest = items.slice(stored);
          continue;
        } catch (err) {
          const item = rest[0];
          const failed = located(err, item.position, item.line, item.inner);
          failed.stored = stored;
          throw failed;
        }
      }
      const half = rest.slice(0, Math.ceil(rest.length / 2));
      try {
        await commit(half);
        stored += half.length;
        rest = rest.slice(half.length);
        if (rest.length === 0) return;
      } catch {
        rest = half;
      }
    }
  }

  /**
   * Every current resource as NDJSON, one resource per line, type by type.
   * @param {{ types?: string[] }} [options]
   * @returns {ReadableStream<string>}
   */
  export({ types } = {}) {
    const store = this;
    const pending = [];
    let bundle;
    let next = null;
    let started = false;
    return new ReadableStream({
      async pull(controller) {
        for (;;) {
          if (pending.length > 0) {
            controller.enqueue(pending.shift());
            return;
          }
          if (!started) {
            started = true;
            bundle = await store.search(undefined, { _count: 1000, ...(types ? { _type: types.join(",") } : {}) });
          } else if (next) {
            bundle = await store.#page(next);
          } else {
            controller.close();
            return;
          }
          for (const entry of bundle.entry ?? []) pending.push(JSON.stringify(entry.resource) + "\n");
          next = bundle.link?.find((link) => link.relation === "next")?.url ?? null;
        }
      },
    });
  }

  /**
   * Syncs the store with a remote FHIR server: pulls the remote's changes in `scope` (the
   * first time, all of it), merges them with local changes, pushes local changes, and records
   * what does not merge as a conflict (see {@link FhirStore#conflicts}). Safe to interrupt:
   * the next sync resumes where this one stopped, and nothing is pushed twice as a new
   * resource.
   *
   * @param {{ remote: string, scope: { patient: string } | { types: string[] } | { searches: string[] },
   *   fetch?: typeof fetch, headers?: Record<string, string>,
   *   accessToken?: string | (() => string | Promise<string>), onProgress?: (progress: { phase: string, done: number, total?: number }) => void,
   *   signal?: AbortSignal, pageSize?: number, pushSize?: number, maxAttempts?: number,
   *   timeout?: number, strict?: boolean }} options
   *   `remote`: the server's base URL. `accessToken` (or a function answering one, called
   *   before each request so that it can be refreshed) is sent as a Bearer token to that
   *   server only. `fetch` defaults to the global one. `maxAttempts` (default 4): how often a
   *   request that gets no answer, a 429 or a 5xx is sent before the sync gives up; `timeout`
   *   (default 60 s): how long one request may wait for its answer. `strict: false` reads what
   *   the server sends leniently: a resource with elements R4 does not have (or other reading
   *   errors) is stored without them, with a warning in `warnings`, instead of being left out;
   *   a local change to such a resource is not pushed (a `PUT` would remove those elements on
   *   the server) until the server's version reads in full.
   * @returns {Promise<{ pulled: number, pushed: number, merged: number, conflicts: number,
   *   requests: number, complete: boolean, issues: { resource?: string, message: string }[],
   *   warnings: { resource?: string, message: string }[] }>}
   * @throws {FhirError} for options that are not valid; an AbortError when `signal` aborts.
   */
  async sync(options = {}) {
    // One sync at a time per store: a second waits for the first (both would push the same
    // changes, and the second would only learn from 412s that the first had).
    // Across tabs and workers on one IndexedDB store, a Web Lock does the same.
    const locks = globalThis.navigator?.locks;
    const name = this.#options.name;
    const exclusive = () =>
      locks && name !== undefined
        ? locks.request(`hearth-sync:${name}`, options?.signal ? { signal: options.signal } : {}, () => this.#syncNow(options))
        : this.#syncNow(options);
    const run = this.#syncing.then(exclusive);
    this.#syncing = run.catch(() => {});
    return run;
  }

  async #syncNow(options) {
    if (options === null || typeof options !== "object") throw invalid(`expected sync options as an object, found ${describe(options)}`);
    const { remote, scope, fetch: send = globalThis.fetch, headers = {}, accessToken, onProgress, signal, pageSize, pushSize, maxAttempts, timeout = 60_000, strict = true } = options;
    if (!(Number(timeout) > 0)) throw invalid(`expected timeout as a number of milliseconds, found ${describe(timeout)}`);
    let base;
    try {
      base = new URL(String(remote));
    } catch {
      throw invalid(`expected remote as the absolute URL of a FHIR server, found ${JSON.stringify(remote)}`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") throw invalid(`expected an http or https remote, found ${JSON.stringify(remote)}`);
    const remoteUrl = base.href.replace(/\/+$/, "");
    const [kind, values] = syncScope(scope);
    if (typeof send !== "function") throw invalid("no fetch function: pass one as options.fetch");
    const session = await this.#inTurn((service) => answered(service.syncSession(remoteUrl, kind, values, Number(pageSize ?? Number.NaN), Number(pushSize ?? Number.NaN), Number(maxAttempts ?? Number.NaN), strict !== false)));
    this.#remote = remoteUrl;
    let reply = { status: Number.NaN, headers: [], body: new Uint8Array(), error: undefined };
    for (;;) {
      signal?.throwIfAborted();
      const step = await this.#inTurn((service) => service.syncStep(session, reply.status, reply.headers, reply.body, reply.error));
      reply = { status: Number.NaN, headers: [], body: new Uint8Array(), error: undefined };
      try {
        onProgress?.(step.progress);
      } catch (err) {
        console.error("hearth: a sync progress listener failed", err);
      }
      if (step.done !== undefined) {
        const summary = step.done;
        if (summary.pulled + summary.merged > 0) {
          const change = { method: "sync", server: remoteUrl, pulled: summary.pulled, merged: summary.merged };
          this.#emit({ ...change, remote: false });
          this.#channel?.postMessage({ changes: [change] });
        }
        if (summary.conflicts > 0) {
          for (const conflict of await this.conflicts({ remote: remoteUrl })) {
            for (const listener of this.#conflictListeners) {
              try {
                listener(conflict);
              } catch (err) {
                console.error("hearth: a conflict listener failed", err);
              }
            }
          }
        }
        return summary;
      }
      if (step.wait !== undefined) {
        await sleep(step.wait, signal);
        continue;
      }
      const request = step.send;
      const requestHeaders = new Headers(request.headers);
      for (const [name, value] of Object.entries(headers)) requestHeaders.set(name, String(value));
      const token = typeof accessToken === "function" ? await accessToken() : accessToken;
      if (token) requestHeaders.set("Authorization", `Bearer ${token}`);
      // A request that gets no answer in `timeout` ms has failed (and is tried again as the
      // engine decides), so that a connection that hangs does not hold every later sync.
      const timer = new AbortController();
      const timeoutId = setTimeout(() => timer.abort(new DOMException(`no answer in ${timeout} ms`, "TimeoutError")), timeout);
      const requestSignal = signal ? eitherSignal(signal, timer.signal) : timer.signal;
      try {
        // Redirects are not followed (the token would go with them): a redirect is the answer.
        const response = await send(request.url, { method: request.method, headers: requestHeaders, body: request.body, signal: requestSignal, redirect: "manual" });
        if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
          reply = { status: response.status || 302, headers: [], body: new Uint8Array(), error: undefined };
        } else {
          const body = new Uint8Array(await response.arrayBuffer());
          const flat = [];
          response.headers.forEach((value, name) => flat.push(name, value));
          reply = { status: response.status, headers: flat, body, error: undefined };
        }
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        const reason = timer.signal.aborted ? timer.signal.reason : err;
        reply = { status: Number.NaN, headers: [], body: new Uint8Array(), error: String(reason?.message ?? reason) };
      } finally {
        clearTimeout(timeoutId);
      }
    }
  }

  /**
   * Syncs now, then every `interval` milliseconds (default 60 s) and whenever the host comes
   * back online; after a failed sync it waits longer each time (doubling up to 5 minutes).
   * Takes the options of {@link FhirStore#sync}, plus `interval` and `onSync(summary | error)`.
   * @returns {{ stop(): void, now(): Promise<object> }}
   */
  startSync(options = {}) {
    const { interval = 60_000, onSync, ...syncOptions } = options;
    const controller = new AbortController();
    let failures = 0;
    let timer;
    let running;
    const run = async () => {
      clearTimeout(timer);
      if (controller.signal.aborted) return undefined;
      if (running) return running;
      running = (async () => {
        let result;
        try {
          result = await this.sync({ ...syncOptions, signal: controller.signal });
          failures = result.complete ? 0 : failures + 1;
        } catch (err) {
          result = err;
          failures += 1;
        }
        try {
          onSync?.(result);
        } catch (err) {
          console.error("hearth: an onSync listener failed", err);
        }
        if (!controller.signal.aborted) {
          const wait = failures === 0 ? interval : Math.min(interval * 2 ** (failures - 1), 5 * 60_000);
          timer = setTimeout(run, wait);
        }
        return result;
      })().finally(() => {
        running = undefined;
      });
      return running;
    };
    const online = () => run();
    globalThis.addEventListener?.("online", online);
    run();
    return {
      stop() {
        controller.abort(new DOMException("the sync was stopped", "AbortError"));
        clearTimeout(timer);
        globalThis.removeEventListener?.("online", online);
      },
      now: run,
    };
  }

  /**
   * Why the store can no longer be used (closed, its database deleted or opened at a newer
   * version elsewhere), or undefined while it can.
   * @returns {string | undefined}
   */
  get closed() {
    return this.#closed ?? (this.#service?.closedReason?.() || undefined);
  }

  /**
   * The local changes the remote of the last sync (or `remote`) has not received yet, as
   * `"Type/id"` references: what the next sync pushes, and conflicts waiting to be resolved.
   * @param {{ remote?: string }} [options]
   * @returns {Promise<string[]>}
   */
  async pending({ remote = this.#remote } = {}) {
    if (remote === undefined) return [];
    return this.#inTurn((service) => service.syncPending(String(remote).replace(/\/+$/, "")));
  }

  /**
   * The conflicts the last sync (or `remote`) left: `{ type, id, remoteVersion, paths, base,
   * local, remote }`, each side a resource or null (absent, deleted).
   * @param {{ remote?: string }} [options]
   */
  async conflicts({ remote = this.#remote } = {}) {
    if (remote === undefined) return [];
    const text = await this.#inTurn((service) => service.syncConflicts(String(remote).replace(/\/+$/, "")));
    return JSON.parse(text);
  }

  /**
   * Resolves a conflict: `"local"` keeps the local side and pushes it at the next sync,
   * `"remote"` takes the remote side, a resource stores and pushes that resource.
   * @param {string} reference `Type/id`
   * @param {"local" | "remote" | object} choice
   * @param {{ remote?: string }} [options]
   * @returns {Promise<boolean>} false when there was no conflict on it.
   */
  async resolve(reference, choice, { remote = this.#remote } = {}) {
    const [type, id] = String(reference).split("/");
    checkType(type);
    checkId(id);
    if (remote === undefined) return false;
    const resource = typeof choice === "object" && choice !== null ? JSON.stringify(choice) : undefined;
    const kind = resource !== undefined ? "resource" : choice;
    if (kind !== "local" && kind !== "remote" && kind !== "resource") throw invalid(`expected "local", "remote" or a resource, found ${describe(choice)}`);
    const resolved = await this.#inTurn((service) => service.syncResolve(String(remote).replace(/\/+$/, ""), type, id, kind, resource));
    if (resolved) {
      const change = { method: "update", resourceType: type, id };
      this.#emit({ ...change, remote: false });
      this.#channel?.postMessage({ changes: [change] });
    }
    return resolved;
  }

  /**
   * Calls `listener` after each change: `{ method, resourceType, id, versionId, remote }`;
   * `remote` is true for a change made by another tab or worker on the same store.
   * @param {"change"} event
   * @param {(change: object) => void} listener
   * @returns {() => void} a function that removes the listener.
   */
  on(event, listener) {
    if (event !== "change" && event !== "conflict") throw invalid(`unknown event ${JSON.stringify(event)}; the events are "change" and "conflict"`);
    if (typeof listener !== "function") throw invalid(`expected a listener function, found ${describe(listener)}`);
    const listeners = event === "change" ? this.#listeners : this.#conflictListeners;
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /** Removes a listener given to {@link FhirStore#on}. */
  off(event, listener) {
    (event === "conflict" ? this.#conflictListeners : this.#listeners).delete(listener);
  }

  #emit(change) {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        console.error("hearth: a change listener failed", err);
      }
    }
  }

  /** Tells listeners here and in other tabs what a successful write changed. */
  #announce(method, path, answer, body) {
    const changes = [];
    const header = (name) => answer.headers.find(([key]) => key.toLowerCase() === name)?.[1];
    const versionOf = (etag) => /(\d+)/.exec(etag ?? "")?.[1];
    const fromLocation = (location, how) => {
      const match = /([A-Z][A-Za-z]+)\/([^/]+)\/_history\/([^/?]+)/.exec(location ?? "");
      if (match) changes.push({ method: how, resourceType: match[1], id: match[2], versionId: match[3] });
    };
    // A deletion is announced when something was deleted (its answer names the new version);
    // a conditional one names no id.
    const deleted = (url, etag) => {
      const version = versionOf(etag);
      if (version === undefined) return;
      const [target, query] = String(url).split("?");
      const [resourceType, id] = target.replace(/^\/+/, "").split("/");
      changes.push({ method: "delete", resourceType, id: query === undefined && id !== undefined ? decodeURIComponent(id) : undefined, versionId: version });
    };
    if (path === "" || path === "/") {
      let request;
      let response;
      try {
        response = JSON.parse(answer.body);
        // The request is read only when an answer needs it (a deletion, or an update that
        // may have been a patch): imports, all creates, skip reading their Bundle again.
        const needed = (response.entry ?? []).some((entry) => /^20[04]/.test(entry.response?.status ?? ""));
        request = needed ? JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body)) : {};
      } catch {
        return;
      }
      (response.entry ?? []).forEach((entry, index) => {
        const status = entry.response?.status ?? "";
        const asked = request.entry?.[index]?.request;
        if (asked?.method === "DELETE" && status.startsWith("204")) deleted(asked.url, entry.response.etag);
        else if (/^20[01]/.test(status)) fromLocation(entry.response.location, status.startsWith("201") ? "create" : asked?.method === "PATCH" ? "patch" : "update");
      });
    } else if (method === "DELETE") {
      deleted(path, header("etag"));
    } else if (!path.includes("$") && !path.endsWith("_search")) {
      fromLocation(header("content-location") ?? header("location"), answer.status === 201 ? "create" : method === "PATCH" ? "patch" : "update");
    }
    if (changes.length === 0) return;
    for (const change of changes) this.#emit({ ...change, remote: false });
    try {
      this.#channel?.postMessage({ changes });
    } catch {
      // A closed channel has nobody to tell.
    }
  }

  /**
   * The REST API as a Fetch API function: `input` is a URL under `baseUrl` (or relative to it)
   * or a Request. Answers every interaction `hearth serve` answers, with the same statuses,
   * headers and OperationOutcomes. With `auth`, a request needs a bearer token, or `claims`
   * given in `init` by a trusted caller in the same process.
   * @param {Request | URL | string} input
   * @param {RequestInit & { claims?: object }} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init) {
    const request = input instanceof Request && init === undefined ? input : new Request(this.#resolve(input), init);
    const url = new URL(request.url);
    const base = this.#base;
    let path;
    if (url.origin !== base.origin || !(url.pathname + "/").startsWith(base.pathname)) {
      const answer = outcomeAnswer(404, "not-found", `${url.origin}${url.pathname} is not under this store's base URL ${this.#options.baseUrl}`);
      return toResponse(answer, request.method);
    }
    path = url.pathname.slice(base.pathname.length).replace(/^\/+/, "");
    try {
      path = decodeURIComponent(path);
    } catch {
      return toResponse(outcomeAnswer(400, "invalid", `the path ${JSON.stringify(path)} has a malformed escape`), request.method);
    }
    const headers = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    if (headers.host === undefined) headers.host = url.host;
    const body = request.method === "GET" || request.method === "HEAD" ? undefined : new Uint8Array(await request.arrayBuffer());
    const query = rawQuery(url.search);
    if (query instanceof Response) return query;
    // HEAD is GET without the body.
    const method = request.method === "HEAD" ? "GET" : request.method;
    let claims = init?.claims;
    const verifier = this.#options.verifier;
    if (verifier !== undefined && claims === undefined) {
      if (method === "GET" && path === ".well-known/smart-configuration") {
        try {
          return new Response(JSON.stringify(await verifier.smartConfiguration()), { status: 200, headers: { "content-type": "application/json" } });
        } catch (err) {
          return toResponse(outcomeAnswer(503, "transient", err.message), request.method);
        }
      }
      if (method !== "OPTIONS" && !(method === "GET" && path === "metadata")) {
        const verdict = await verifier.authorize((name) => headers[name], query);
        claims = verdict.claims ?? { refused: verdict.refused };
      }
    }
    const answer = await this.handle(method, path, { query, headers, body, claims });
    return toResponse(answer, request.method);
  }

  #resolve(input) {
    const text = input instanceof URL ? input.href : String(input);
    if (/^[a-z][a-z0-9+.-]*:/i.test(text)) return text;
    return new URL(text.replace(/^\/+/, ""), this.#base).href;
  }

  /** Closes the store; pending requests finish first. */
  async close() {
    await this.#queue;
    this.#closed = "the store was closed";
    this.#channel?.close();
    this.#listeners.clear();
    this.#service?.close?.();
    if (this.#options.ownsStore) this.#options.store?.close?.();
  }

  /**
   * Deletes an IndexedDB store with everything in it. Open connections elsewhere are closed
   * first (they answer 503 afterwards).
   * @param {string} name
   * @returns {Promise<void>}
   */
  static async destroy(name) {
    if (typeof indexedDB === "undefined") throw invalid("IndexedDB is not available here", 501, "not-supported");
    try {
      await wasm.FhirService.destroyIndexedDb(String(name));
    } catch (thrown) {
      throw toFhirError(thrown);
    }
  }
}

/**
 * `{ value, outcome }`: `resource` read leniently (as its canonical JSON), and the warnings
 * of what was left out, when something was.
 */
function lenientRead(resource, position, line, bundleEntry) {
  let parsed;
  try {
    parsed = wasm.ParsedResource.lenient(toBytes(resource));
  } catch (thrown) {
    throw located(toFhirError(thrown), position, line, bundleEntry);
  }
  try {
    const warnings = parsed.warnings;
    if (warnings === undefined) return { value: resource };
    return { value: JSON.parse(parsed.toJsonText()), outcome: JSON.parse(warnings) };
  } finally {
    parsed.free();
  }
}

/** Whether a resource's JSON text reads leniently with nothing left out. */
function readsClean(text) {
  let parsed;
  try {
    parsed = wasm.ParsedResource.lenient(toBytes(text));
  } catch {
    return false;
  }
  try {
    return parsed.warnings === undefined;
  } finally {
    parsed.free();
  }
}

/** Whether `text` holds no lone surrogate (which UTF-8 can not carry). */
function wellFormed(text) {
  return typeof text.isWellFormed === "function" ? text.isWellFormed() : !/[\ud800-\udfff]/.test(text);
}

/** The transaction Bundle that stores `items`, as bytes. */
function importBody(items) {
  return toBytes(`{"resourceType":"Bundle","type":"transaction","entry":[${items.map(importEntryText).join(",")}]}`);
}

/** A transaction entry storing an imported resource under its own id, or a new one. */
function importEntry(item) {
  const resource = item.value;
  return { resource, request: importRequest(resource) };
}

function importRequest(resource) {
  return resource.id
    ? { method: "PUT", url: `${resource.resourceType}/${encodeURIComponent(resource.id)}` }
    : { method: "POST", url: resource.resourceType };
}

/**
 * {@link importEntry} as JSON text, holding the resource's source text as it came when there is
 * one (it is JSON: it was read as such).
 */
function importEntryText(item) {
  if (item.text === undefined) return jsonText(importEntry(item));
  return `{"resource":${item.text},"request":${JSON.stringify(importRequest(item.value))}}`;
}

function resourceTypeOf(resource) {
  const value = typeof resource === "string" ? safeParse(resource) : resource;
  if (value === null || typeof value !== "object" || typeof value.resourceType !== "string") {
    throw invalid(`expected a FHIR resource with a resourceType, found ${describe(value)}`);
  }
  checkType(value.resourceType);
  return value.resourceType;
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** An error with where in the import source it happened. */
function located(err, position, line, inner) {
  const failed = err instanceof FhirError ? err : toFhirError(err);
  failed.entry = position;
  if (line !== undefined) failed.line = line;
  if (inner !== undefined) failed.bundleEntry = inner;
  const where = line !== undefined ? `line ${line}` : inner !== undefined ? `entry ${position}, its Bundle's entry ${inner}` : `entry ${position}`;
  failed.message = `${where}: ${failed.message}`;
  return failed;
}

/** The query as `[name, value]` pairs, kept as written (`+` and escapes decoded once). */
function rawQuery(search) {
  const pairs = [];
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const at = part.indexOf("=");
    const name = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? "" : part.slice(at + 1);
    try {
      pairs.push([decodeURIComponent(name.replace(/\+/g, " ")), decodeURIComponent(value.replace(/\+/g, " "))]);
    } catch {
      return toResponse(outcomeAnswer(400, "invalid", `the query parameter ${JSON.stringify(part.slice(0, 100))} has a malformed escape`), "GET");
    }
  }
  return pairs;
}

/** A PendingRequest-like object already answered (for synchronous engine calls run in turn). */
function answered(value) {
  return { poll: () => ({ answer: value }) };
}

/** `[kind, values]` of a sync scope. */
function syncScope(scope) {
  if (scope === null || typeof scope !== "object") throw invalid(`expected scope as { patient }, { types } or { searches }, found ${describe(scope)}`);
  if (typeof scope.patient === "string" && scope.patient !== "") return ["patient", [scope.patient]];
  for (const kind of ["types", "searches"]) {
    const list = scope[kind];
    if (Array.isArray(list) && list.length > 0 && list.every((item) => typeof item === "string" && item !== "")) return [kind, list];
  }
  throw invalid(`expected scope as { patient: id }, { types: [...] } or { searches: [...] }, found ${JSON.stringify(scope)}`);
}

/** A signal that aborts when `a` or `b` does. */
function eitherSignal(a, b) {
  if (typeof AbortSignal.any === "function") return AbortSignal.any([a, b]);
  const both = new AbortController();
  for (const one of [a, b]) {
    if (one.aborted) both.abort(one.reason);
    else one.addEventListener("abort", () => both.abort(one.reason), { once: true });
  }
  return both.signal;
}

/** Waits `ms`, or less when `signal` aborts (then throws its reason). */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function outcomeAnswer(status, code, diagnostics) {
  return { status, headers: [["Content-Type", `${FHIR_JSON}; charset=utf-8`]], body: JSON.stringify(errorOutcome(code, diagnostics)) };
}

function toResponse(answer, method) {
  const empty = answer.status === 204 || answer.status === 304 || method === "HEAD";
  return new Response(empty ? null : answer.body, { status: answer.status, headers: answer.headers });
}

/** `{ value, position, line? }` for each resource or Bundle of an import source. */
async function* importItems(source) {
  if (typeof source === "string") {
    const text = source.trim();
    if (text.startsWith("[")) {
      yield* fromArray(JSON.parse(text));
    } else if (text.startsWith("{") && !/\n\s*\{/.test(text)) {
      yield { value: parseJson(text, 0), position: 0 };
    } else {
      yield* fromLines(splitLines([text]));
    }
    return;
  }
  if (Array.isArray(source)) {
    yield* fromArray(source);
    return;
  }
  if (source !== null && typeof source === "object") {
    if (typeof source.resourceType === "string") {
      yield { value: source, position: 0 };
      return;
    }
    const stream = typeof source.stream === "function" ? source.stream() : source;
    if (typeof stream.getReader === "function" || typeof stream[Symbol.asyncIterator] === "function" || typeof stream[Symbol.iterator] === "function") {
      yield* fromLines(splitLines(chunks(stream)));
      return;
    }
  }
  throw invalid(`expected a Bundle, an array of resources, NDJSON text, or a stream, Blob or iterable of NDJSON, found ${describe(source)}`);
}

function* fromArray(list) {
  for (let position = 0; position < list.length; position += 1) yield { value: list[position], position };
}

async function* fromLines(lines) {
  let position = 0;
  for await (const { text, line } of lines) {
    if (text.trim() === "") continue;
    yield { value: parseJson(text, position, line), text, position, line };
    position += 1;
  }
}

function parseJson(text, position, line) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw located(invalid(`not JSON: ${err.message}`, 400, "structure"), position, line);
  }
}

async function* chunks(stream) {
  if (typeof stream.getReader === "function") {
    const reader = stream.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  } else {
    for await (const value of stream) yield value;
  }
}

/** Lines of text from string or byte chunks, with their 1-based numbers. */
async function* splitLines(source) {
  const textDecoder = new TextDecoder();
  let rest = "";
  let line = 0;
  for await (const chunk of source) {
    rest += typeof chunk === "string" ? chunk : textDecoder.decode(chunk, { stream: true });
    let at;
    while ((at = rest.indexOf("\n")) >= 0) {
      line += 1;
      yield { text: rest.slice(0, at), line };
      rest = rest.slice(at + 1);
    }
  }
  rest += textDecoder.decode();
  if (rest.length > 0) {
    line += 1;
    yield { text: rest, line };
  }
}

