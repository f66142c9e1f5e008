/// <reference lib="esnext.disposable" />
// Types of the hearth-fhir package (every entry point exports the same API).

import type { Bundle, OperationOutcome, Parameters, Resource, ResourceType, ResourceTypeMap } from "./src/generated/r4.js";

/** Types of every R4 resource and data type: `Patient`, `Observation`, `Bundle<T>`, `Resource`, ... */
export type * from "./src/generated/r4.js";

/** FHIR JSON as text, as UTF-8 bytes, or already parsed. */
export type FhirInput = string | Uint8Array | ArrayBuffer | { resourceType: string; [element: string]: unknown };

/** What {@link inspect} learns about a resource. */
export interface ResourceSummary {
  resourceType: string;
  id?: string;
}

/**
 * A failure reported by Hearth, with the HTTP status a FHIR server would answer and the
 * `OperationOutcome` that says what went wrong and where.
 *
 * @example
 * try { inspect("[]"); } catch (err) {
 *   if (err instanceof FhirError) console.log(err.status, err.outcome.issue[0].diagnostics);
 * }
 */
export class FhirError extends Error {
  constructor(message: string, details: { status: number; outcome: OperationOutcome; cause?: unknown });
  readonly name: "FhirError";
  /** The HTTP status a FHIR server would answer with (400 for unreadable input). */
  readonly status: number;
  /** What went wrong and where. */
  readonly outcome: OperationOutcome;
}

/**
 * Reads a FHIR resource by the R4 JSON rules (known elements only, the right JSON type for each,
 * no nulls or empty values, choice elements and `_name` companions as the spec defines them)
 * and returns its `{ resourceType, id }`.
 *
 * @throws {FhirError} status 400, one issue per violation with element path, line and column.
 * @example
 * inspect('{"resourceType":"Patient","id":"example"}'); // { resourceType: "Patient", id: "example" }
 */
export function inspect(input: FhirInput): ResourceSummary;

/**
 * Reads a FHIR resource by the R4 JSON rules and writes it back in canonical form: elements in
 * the order of the specification, each primitive's `_name` companion after it, numbers exactly
 * as written (`1.50` stays `1.50`).
 *
 * @param options `pretty` (default true): two-space indentation; false: compact.
 * @throws {FhirError} status 400, one issue per violation with element path, line and column.
 * @example
 * format('{"id":"a","resourceType":"Patient"}', { pretty: false }); // '{"resourceType":"Patient","id":"a"}'
 */
export function format(input: FhirInput, options?: { pretty?: boolean }): string;

/**
 * Validates a resource against the FHIR R4 base specification: the FHIR JSON rules,
 * cardinalities, primitive formats, required bindings whose codes the engine carries, and every
 * invariant of the core definitions. An invalid resource is a result, not an exception: one
 * issue per finding, with `expression` locating the element; one information issue when
 * nothing was found.
 * @example
 * validate({ resourceType: "Patient", contact: [{ gender: "male" }] }).issue[0].diagnostics;
 * // "pat-1: SHALL at least contain a contact's details or a reference to an organization"
 */
export function validate(input: FhirInput, options?: ValidateOptions): OperationOutcome;

/**
 * Profiles and value sets for validation: StructureDefinitions, ValueSets, or Bundles of them.
 * @example
 * const profiles = new FhirProfiles([usCorePatientDefinition]);
 * validate(patient, { profiles, profile: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient" });
 */
export class FhirProfiles {
  constructor(resources?: Iterable<FhirInput>);
  /**
   * Loads a StructureDefinition, a ValueSet, a Questionnaire, or a Bundle of them; returns how many it loaded.
   * QuestionnaireResponses naming a loaded Questionnaire are checked against it.
   */
  add(resource: FhirInput): number;
  /** The URLs of the loaded profiles. */
  readonly urls: string[];
}

/** Options of {@link validate}. */
export interface ValidateOptions {
  /** Loaded profiles: the resource is checked against those it claims in `meta.profile`. */
  profiles?: FhirProfiles;
  /** A profile to check the resource against, by canonical URL. */
  profile?: string;
  /** Strings (other than narrative) that embed what looks like an HTML tag are errors. */
  securityChecks?: boolean;
  /** Markdown that embeds HTML tags is an error. */
  noHtmlInMarkdown?: boolean;
  /** JSON text may have `//` and `/* *\/` comments (as JSON5 and some authoring tools write); FHIR JSON has none. */
  allowComments?: boolean;
  /** Contained resources are not checked, nor the rules about them (dom-2 to dom-5). */
  skipContained?: boolean;
}

/** The version of the engine inside the Wasm module. */
export function version(): string;

/** How to read resources: `strict: false` reads data from elsewhere leniently. */
export interface ReadOptions {
  /**
   * True (the default): a resource that breaks the FHIR JSON rules is refused whole. False:
   * the elements at fault (unknown elements, wrong types, empty values) are left out, each with
   * a warning; JSON that does not parse, or names no known `resourceType`, is still refused.
   */
  strict?: boolean;
}

/** A warning or error of an OperationOutcome. */
export interface FhirIssue {
  severity: "fatal" | "error" | "warning" | "information";
  code: string;
  diagnostics?: string;
  /** The element's FHIRPath location: `Patient.name[0].given`. */
  expression?: string[];
  /** Line and column in the JSON read, as the `operationoutcome-issue-line` and `-col` extensions. */
  extension?: { url: string; valueInteger: number }[];
}

/**
 * A resource read once and held by the engine, so that many expressions can be evaluated on it
 * without reading its JSON again.
 *
 * Once evaluated a second time, it also keeps its JSON as frozen JS objects (as `toJSON()`
 * gives it), where plain paths are answered without a call into the engine. Whole resources
 * among such results (a Bundle's entries, contained resources) are those frozen objects, the
 * same each time: copy one (`structuredClone`) to change it. `free()` lets go of them too.
 *
 * @example
 * const patient = parseResource('{"resourceType":"Patient","name":[{"family":"Chalmers"}]}');
 * evaluate(patient, "Patient.name.family"); // ["Chalmers"]
 */
export class FhirResource {
  /** @throws {FhirError} status 400 when the input is not a FHIR resource. */
  constructor(input: FhirInput, options?: ReadOptions);
  /** What a lenient read left out (empty when nothing was, and always when strict). */
  readonly warnings: FhirIssue[];
  /**
   * Gives the engine memory back now, instead of when the object is garbage-collected (which a
   * synchronous loop never lets happen). Using it afterwards throws; freeing it again does
   * nothing. `using x = ...` frees it at the end of the block.
   */
  free(): void;
  [Symbol.dispose](): void;
  readonly resourceType: string;
  /** The resource as FHIR JSON (canonical form). */
  toJSON(): Resource;
}

/**
 * Reads a resource into the engine.
 * @throws {FhirError} status 400 when the input is not a FHIR resource.
 */
export function parseResource(input: FhirInput, options?: ReadOptions): FhirResource;

/** Options of an evaluation. */
export interface EvaluateOptions {
  /** Values for `%name` variables: strings, numbers, booleans, resources, or arrays of them. */
  variables?: Record<string, unknown>;
}

/** Options of an evaluation on one resource. */
export interface EvaluateOneOptions extends EvaluateOptions, ReadOptions {
  /** With `strict: false`: called with what the lenient read left out, when something was. */
  onWarning?: (issues: FhirIssue[]) => void;
}

/**
 * Many resources held by the engine, so that an expression can be evaluated over all of them in
 * one call with {@link CompiledFhirPath.evaluateEach}. Whole resources among its results (the
 * set's resources, a Bundle's entries, contained resources) are read into JavaScript once per
 * set: each later result naming the same resource is the same frozen object. The set keeps
 * them, in JS memory, until it is freed.
 */
export class FhirResourceSet {
  /** @throws {FhirError} status 400 when one is not a FHIR resource. */
  constructor(resources?: Iterable<FhirInput>, options?: ReadOptions);
  /** What lenient reads left out, for each resource where something was (by position in the set). */
  readonly warnings: { position: number; issue: FhirIssue[] }[];
  /**
   * Gives the engine memory back now, instead of when the object is garbage-collected (which a
   * synchronous loop never lets happen). Using it afterwards throws; freeing it again does
   * nothing. `using x = ...` frees it at the end of the block.
   */
  free(): void;
  [Symbol.dispose](): void;
  /** Adds a resource; returns its position. @throws {FhirError} */
  add(resource: FhirInput): number;
  readonly size: number;
}

/** A compiled FHIRPath expression: compile once, evaluate many times. */
export class CompiledFhirPath {
  private constructor();
  /**
   * Gives the engine memory back now, instead of when the object is garbage-collected (which a
   * synchronous loop never lets happen). Using it afterwards throws; freeing it again does
   * nothing. `using x = ...` frees it at the end of the block.
   */
  free(): void;
  [Symbol.dispose](): void;
  /**
   * Evaluates the expression on every resource of a set, in one call into the engine; returns one
   * result array per resource. Resources among the results are the set's shared, frozen objects
   * (not when `variables` are given). @throws {FhirError}
   */
  evaluateEach(set: FhirResourceSet, options?: EvaluateOptions): unknown[][];
  /**
   * Evaluates the expression with `resource` as input, `%resource` and `%context` (with `null`
   * or `undefined`, on an empty input). Returns FHIR primitives as JSON values, complex values as FHIR JSON objects, dates and
   * times as strings, quantities as `{ value, unit }`. A plain object is read only as far as the
   * expression reaches (those elements by the FHIR JSON rules); JSON text and bytes are read whole.
   * Objects among the results of a plain object are its own (each read whole by those rules), not
   * copies.
   * @throws {FhirError} status 400 when the resource does not read or evaluation fails.
   */
  evaluate(resource: FhirResource | FhirInput | null | undefined, options?: EvaluateOneOptions): unknown[];
}

/**
 * Compiles a FHIRPath expression. With `resourceType`, the expression is checked against the R4
 * model (unknown elements, wrong type names) before any evaluation.
 * @throws {FhirError} status 400 for a syntax or semantic error, with its offset.
 * @example
 * const given = compile("Patient.name.given", { resourceType: "Patient" });
 * given.evaluate({ resourceType: "Patient", name: [{ given: ["Peter"] }] }); // ["Peter"]
 */
export function compile(expression: string, options?: { resourceType?: string }): CompiledFhirPath;

/**
 * Evaluates a FHIRPath expression on a resource (compiled expressions are cached); with `null`
 * or `undefined`, on an empty input, for expressions that need no resource (`1 + 1`).
 * @throws {FhirError} status 400 when the resource does not read, or the expression does not
 *   parse or fails.
 * @example
 * evaluate({ resourceType: "Patient", birthDate: "1974-12-25" }, "Patient.birthDate"); // ["1974-12-25"]
 */
export function evaluate(resource: FhirResource | FhirInput | null | undefined, expression: string, options?: EvaluateOneOptions): unknown[];

/**
 * The verified claims of an access token, as the access layer takes them (see
 * `docs/access.md`): SMART scopes (v1 or v2), the launch patient, the user, the client, roles.
 */
export interface FhirClaims {
  /** Space-separated scopes: `patient/Observation.rs`, `user/*.cruds`, `system/*.*`, ... */
  scope: string;
  /** The launch patient's id: what `patient/` scopes reach (its compartment). */
  patient?: string;
  encounter?: string;
  /** The user: `Practitioner/123` or an absolute URL ending so. */
  fhirUser?: string;
  clientId?: string;
  sub?: string;
  /** The user's roles, for the roles file. */
  roles?: string[];
}

/** A request refused before its claims were known (a token missing or invalid): answered and recorded. */
export interface FhirRefusal {
  refused: { status: number; message: string; challenge: string };
}

/** A request to {@link FhirService.handle}; `path` is relative to the base URL. */
export interface FhirRequest {
  method: string;
  path: string;
  query?: Iterable<[string, string]> | URLSearchParams;
  headers?: Record<string, string> | Iterable<[string, string]>;
  body?: string | Uint8Array;
  /** The caller's verified claims: the answer is limited to them and recorded. Leave out only for trusted callers. */
  claims?: FhirClaims | FhirRefusal;
}

/**
 * A roles file: what each role lets `user/` scopes reach (`"Observation.rs"`, `"*.cruds"`),
 * optionally held to the compartment of the user's own resource (`"Practitioner"`).
 */
export interface FhirRoles {
  roles: Record<string, { allow: string[]; compartment?: "Patient" | "Encounter" | "RelatedPerson" | "Practitioner" | "Device" | null }>;
}

/** What {@link FhirService.handle} answers. */
export interface FhirResponse {
  status: number;
  headers: [string, string][];
  body: string;
}

/**
 * A store of ordered keys and values with atomic commits, for {@link FhirService} (synchronous
 * methods) and {@link FhirStore.open} (methods may answer Promises, each awaited).
 */
export interface FhirKeyValueStore {
  get(key: Uint8Array): Uint8Array | undefined;
  scan(start: Uint8Array, end: Uint8Array | undefined, limit: number, reverse: boolean): [Uint8Array, Uint8Array][];
  commit(writes: [Uint8Array, Uint8Array | undefined][]): void;
  /** Called before each engine transaction (`write`: it will write), when present. */
  begin?(write: boolean): void;
  /** Called after each engine transaction, committed or not, when `begin` is present. */
  end?(): void;
  /** Called after the engine failed (a Wasm trap): ends any open transaction, writing none of it. */
  reset?(): void;
}

/**
 * What one request may cost. A request over a limit is answered 413 with an OperationOutcome
 * (`too-costly`) naming it; a batch whose answers fill `maxResponseBytes` answers its remaining
 * entries with an OperationOutcome each.
 */
export interface FhirLimits {
  /** Bytes of a request body (default 64 MiB). */
  maxBodyBytes?: number;
  /** Search parameters of one request, URL and `_search` form together (default 100). */
  maxParameters?: number;
  /** Comma-separated values of one parameter (default 1,000). */
  maxValues?: number;
  /** Keys of `_sort` (default 8). */
  maxSortKeys?: number;
  /** Names of `_elements` (default 100). */
  maxElements?: number;
  /** Entries of a batch or transaction (default 10,000). */
  maxEntries?: number;
  /** Bytes of one response body (default 32 MiB). */
  maxResponseBytes?: number;
  /** Stored entries one request may read (default 2,000,000). */
  maxWork?: number;
}

/** Options of {@link FhirService}. */
export interface FhirServiceOptions {
  /** The base URL of `Location` headers and Bundle links (default `http://localhost/fhir`). */
  baseUrl?: string;
  /** Where resources are kept; in memory when none is given. */
  store?: FhirKeyValueStore;
  /** Per-request limits; those not given keep their defaults. */
  limits?: FhirLimits;
  /** Host header values answered besides the base URL's (`name` for any port; `"*"`: any). */
  allowedHosts?: string[];
  /** Web origins whose pages may call the service across origins (`"*"`: any). */
  allowedOrigins?: string[];
  /** With a `store`: restart the engine after a request that leaves its Wasm memory larger. */
  maxMemoryBytes?: number;
  /** How requests with `claims` are judged: a roles file, and the audit trail (default on). */
  access?: { roles?: FhirRoles | string; audit?: boolean };
  /** The SMART authorization server's endpoints, named in the CapabilityStatement. */
  oauth?: { authorize: string; token: string };
  /**
   * Whether a `PUT` may create a resource under an id the client chose (R4's update-as-create;
   * default true). With false, such a `PUT` answers 405 and new resources come by `POST`.
   */
  updateCreate?: boolean;
}

/**
 * A FHIR R4 REST service running in this process (read, vread, create, update, patch, delete,
 * history, search, batch, transaction, `$validate`, `metadata`), over a store in memory or the
 * one given. Requests over a limit are answered 413; other Hosts 421, other origins 403, bodies
 * that are not FHIR JSON 415. After a Wasm trap the engine restarts over the same store; a
 * service in memory then answers 503.
 * @throws {FhirError} from the constructor, status 400, for an unknown limit.
 * @example
 * const service = new FhirService({ baseUrl: "http://localhost:8787/fhir", limits: { maxParameters: 50 } });
 * service.handle({ method: "POST", path: "Patient", body: '{"resourceType":"Patient"}' }).status; // 201
 */
export class FhirService {
  constructor(options?: FhirServiceOptions);
  /**
   * Gives the engine memory back now, instead of when the object is garbage-collected (which a
   * synchronous loop never lets happen). Using it afterwards throws; freeing it again does
   * nothing. `using x = ...` frees it at the end of the block.
   */
  free(): void;
  [Symbol.dispose](): void;
  /** Answers one request; without `headers`, a body is sent as `application/fhir+json`. */
  handle(request: FhirRequest): FhirResponse;
}

/** Bytes of Wasm memory the engine holds now. */
export function engineMemoryBytes(): number;

/** A JSON Patch operation. */
export interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

/** Search parameters: an object (arrays repeat a parameter), URLSearchParams, pairs or a query string. */
export type SearchParams = Record<string, string | number | boolean | (string | number | boolean)[] | undefined> | URLSearchParams | [string, string][] | string;

/** Options of {@link FhirStore.open}: exactly one of `name`, `memory`, `path` or `store`. */
export interface FhirStoreOptions {
  /** An IndexedDB database (in a tab, a dedicated worker or a Service Worker). */
  name?: string;
  /** In memory, gone when the page or process ends. */
  memory?: boolean;
  /** In Node: the directory of the SQLite store `hearth serve --data` uses. */
  path?: string;
  /** A store of your own. */
  store?: FhirKeyValueStore | AsyncFhirKeyValueStore;
  /** Where `fetch` answers, and what `Location` headers and Bundle links start with (default `https://hearth.local/fhir`). */
  baseUrl?: string;
  /** Profiles, value sets and Questionnaires checked on writes and `$validate`. */
  profiles?: FhirProfiles | Iterable<FhirInput>;
  /** `false`: resources are stored once they read as FHIR JSON, without further checks (default true). */
  validation?: boolean;
  /** Per-request limits; those not given keep their defaults. */
  limits?: FhirLimits;
  /**
   * SMART on FHIR authorization for `fetch`: only requests with an access token of `issuer` (a
   * JWT, RS256 or ES256, for `audience`, by default the base URL) are answered, limited to what
   * their scopes reach and recorded as AuditEvents. The store's own methods are not limited.
   */
  auth?: { issuer: string; audience?: string; jwks?: string; roles?: FhirRoles | string; audit?: boolean };
}

/** A {@link FhirKeyValueStore} whose methods answer Promises. */
export interface AsyncFhirKeyValueStore {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  scan(start: Uint8Array, end: Uint8Array | undefined, limit: number, reverse: boolean): Promise<[Uint8Array, Uint8Array][]>;
  commit(writes: [Uint8Array, Uint8Array | undefined][]): Promise<void>;
  begin?(write: boolean): Promise<void> | void;
  end?(): Promise<void> | void;
  reset?(): void;
}

/** What a change listener of {@link FhirStore.on} receives. */
export type FhirChange =
  | {
      method: "create" | "update" | "patch" | "delete";
      resourceType: ResourceType;
      id?: string;
      versionId?: string;
      /** True when another tab or worker made the change. */
      remote: boolean;
    }
  | {
      /** A sync stored remote changes (and merges) here. */
      method: "sync";
      resourceType?: undefined;
      id?: undefined;
      versionId?: undefined;
      /** The remote server's base URL. */
      server: string;
      pulled: number;
      merged: number;
      remote: boolean;
    };

/** What to keep of a remote server's data. */
export type FhirSyncScope = { patient: string } | { types: ResourceType[] } | { searches: string[] };

export interface FhirSyncOptions {
  /** The remote server's base URL (`https://example.org/fhir`). */
  remote: string;
  scope: FhirSyncScope;
  /** Sends the requests; the global `fetch` by default. */
  fetch?: typeof fetch;
  /** Headers added to every request to the remote. */
  headers?: Record<string, string>;
  /** A Bearer token for the remote, or a function answering one (called before each request, so it may refresh it). */
  accessToken?: string | (() => string | Promise<string>);
  onProgress?: (progress: FhirSyncProgress) => void;
  signal?: AbortSignal;
  /** `_count` of the pages pulled (default 200). */
  pageSize?: number;
  /** Most resources pushed in one Bundle (default 100). */
  pushSize?: number;
  /** How often a request that gets no answer, a 429 or a 5xx is sent before the sync gives up (default 4). */
  maxAttempts?: number;
  /** Milliseconds one request may wait for its answer before it counts as failed (default 60,000). */
  timeout?: number;
  /**
   * False: what the server sends is read leniently; a resource with elements R4 does not have
   * is stored without them (listed in `warnings`) instead of being left out, and a local change
   * to it is not pushed until the server's version reads in full (a `PUT` would remove them there).
   */
  strict?: boolean;
}

export interface FhirSyncProgress {
  phase: "capabilities" | "pull" | "push" | "done";
  done: number;
  total?: number;
}

export interface FhirSyncSummary {
  /** Remote versions stored here. */
  pulled: number;
  /** Local changes the remote acknowledged. */
  pushed: number;
  /** Remote and local changes to one resource merged by themselves. */
  merged: number;
  /** New conflicts (see `conflicts()`). */
  conflicts: number;
  /** Requests sent. */
  requests: number;
  /** True when the sync ran to its end. */
  complete: boolean;
  /** Problems met, about one resource (`Patient/1`) or the whole sync. */
  issues: { resource?: string; message: string }[];
  /** With `strict: false`: resources stored without what could not be read. */
  warnings: { resource?: string; message: string }[];
}

/** Local and remote changed the same elements of a resource differently. */
export interface FhirConflict {
  type: ResourceType;
  id: string;
  remoteVersion: string;
  /** Where they differ: `Patient.name[0].family`. */
  paths: string[];
  /** Each side; `null` for absent or deleted. */
  base: Resource | null;
  local: Resource | null;
  remote: Resource | null;
  /**
   * The remote side was read with `strict: false` and elements of it were left out: whatever
   * the resolution, the resource is not pushed until the server's version reads in full.
   */
  lossy?: boolean;
}

/** How far an import has come. */
export interface ImportProgress {
  resources: number;
  bundles: number;
}

/** What an import stored, and (with `strict: false`) what it left out of which entries. */
export interface ImportResult extends ImportProgress {
  warnings: { entry: number; line?: number; bundleEntry?: number; outcome: { resourceType: "OperationOutcome"; issue: FhirIssue[] } }[];
}

/** A resource as stored: with its id and meta. */
export type Stored<R> = R & { id: string; meta: { versionId: string; lastUpdated: string } };

/**
 * A FHIR R4 service over one store: IndexedDB in a tab or worker, SQLite in Node, memory
 * anywhere. Each method answers as the REST API does; failures are {@link FhirError}s with the
 * OperationOutcome and the HTTP status.
 * @example
 * const store = await FhirStore.open({ name: "my-app" });
 * const patient = await store.create({ resourceType: "Patient", name: [{ family: "Chalmers" }] });
 * const bundle = await store.search("Patient", { family: "chalmers" });
 */
export class FhirStore {
  private constructor();
  static open(options: FhirStoreOptions): Promise<FhirStore>;
  /** Deletes an IndexedDB store and everything in it. */
  static destroy(name: string): Promise<void>;
  readonly baseUrl: string;
  create<R extends Resource>(resource: R, options?: { ifNoneExist?: SearchParams }): Promise<Stored<R>>;
  read<T extends ResourceType>(type: T, id: string): Promise<Stored<ResourceTypeMap[T]>>;
  vread<T extends ResourceType>(type: T, id: string, version: string | number): Promise<Stored<ResourceTypeMap[T]>>;
  update<R extends Resource>(resource: R & { id: string }, options?: { ifMatch?: string | number }): Promise<Stored<R>>;
  patch<T extends ResourceType>(type: T, id: string, patch: JsonPatchOperation[] | Parameters, options?: { ifMatch?: string | number }): Promise<Stored<ResourceTypeMap[T]>>;
  delete(type: ResourceType, id: string): Promise<void>;
  search(type: ResourceType | undefined, params?: SearchParams): Promise<Bundle>;
  history(type?: ResourceType, id?: string, params?: SearchParams): Promise<Bundle>;
  transaction(bundle: Bundle): Promise<Bundle>;
  batch(bundle: Bundle): Promise<Bundle>;
  /** Validates without storing; an invalid resource is a result, not an error. */
  validate(resource: Resource, options?: { profile?: string }): Promise<OperationOutcome>;
  /** FHIRPath over one stored resource. */
  evaluate(expression: string, options: { type: ResourceType; id: string; variables?: Record<string, unknown> }): Promise<unknown[]>;
  /** FHIRPath over each match of a search. */
  evaluate(expression: string, options: { type?: ResourceType; params?: SearchParams; variables?: Record<string, unknown> }): Promise<{ resource: string; result: unknown[] }[]>;
  /**
   * Imports a Bundle, an array of resources, NDJSON text, or a stream, Blob or iterable of
   * NDJSON; on failure the FhirError has `entry` (and `line` for NDJSON), and what was stored
   * before it stays.
   */
  import(
    source: Bundle | Resource[] | string | ReadableStream<Uint8Array | string> | Blob | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
    options?: { onProgress?: (progress: ImportProgress) => void; signal?: AbortSignal; batchSize?: number; strict?: boolean },
  ): Promise<ImportResult>;
  /** Every current resource as NDJSON lines. */
  export(options?: { types?: ResourceType[] }): ReadableStream<string>;
  on(event: "change", listener: (change: FhirChange) => void): () => void;
  on(event: "conflict", listener: (conflict: FhirConflict) => void): () => void;
  off(event: "change", listener: (change: FhirChange) => void): void;
  off(event: "conflict", listener: (conflict: FhirConflict) => void): void;
  /** Pulls the remote's changes in `scope`, merges them with local ones, pushes local changes; what does not merge becomes a conflict. */
  sync(options: FhirSyncOptions): Promise<FhirSyncSummary>;
  /** Syncs now, then every `interval` ms (default 60 s) and when the host comes online, backing off after failures. */
  startSync(
    options: FhirSyncOptions & { interval?: number; onSync?: (result: FhirSyncSummary | Error) => void },
  ): { stop(): void; now(): Promise<FhirSyncSummary | Error | undefined> };
  /**
   * The local changes the remote of the last sync (or `remote`) has not received yet, as
   * `"Type/id"`: what the next sync pushes, and conflicts waiting to be resolved.
   */
  /** Why the store can no longer be used (closed, its database deleted or opened at a newer version elsewhere), or undefined while it can. */
  readonly closed: string | undefined;
  pending(options?: { remote?: string }): Promise<string[]>;
  /** The conflicts left with `remote` (default: the last synced). */
  conflicts(options?: { remote?: string }): Promise<FhirConflict[]>;
  /** Resolves the conflict on `reference` (`Type/id`); false when there was none. */
  resolve(reference: string, choice: "local" | "remote" | Resource, options?: { remote?: string }): Promise<boolean>;
  /** The REST API as a Fetch API function, under `baseUrl`. */
  fetch(input: Request | URL | string, init?: RequestInit & { claims?: FhirClaims }): Promise<Response>;
  /** Answers one REST request (what `fetch` calls). */
  handle(method: string, path: string, request?: { query?: [string, string][]; headers?: Record<string, string>; body?: Uint8Array | string; claims?: FhirClaims | FhirRefusal }): Promise<FhirResponse>;
  close(): Promise<void>;
}
