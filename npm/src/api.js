// The public API over the Wasm glue: input conversion, FhirError, nothing FHIR-specific.
// Each entry point (entry-*.js) initialises the Wasm module before re-exporting this file.

import * as wasm from "../dist/wasm/hearth.js";
import { FhirError, errorOutcome, toFhirError } from "./error.js";
import { call, describe, engine, isTrap, onRestart, restartEngine, toBytes } from "./engine.js";
import { checkResource, followHeld, followRoute, invisible, members, parseRoute, plainData, startChecks } from "./plain.js";

export { FhirError };

/** `Symbol.dispose`, so that `using` frees a handle at the end of its block. */
const DISPOSE = Symbol.dispose ?? Symbol.for("Symbol.dispose");

/** A set's method putting its shared resources in results; not part of the API. */
const RESOLVE_SHARED = Symbol("resolveShared");
/** A held resource's method giving its JSON as frozen JS objects; not part of the API. */
const HELD_JSON = Symbol("heldJson");

/** Freezes an object read from JSON and everything in it; returns it. */
function deepFreeze(value) {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze(value[key]);
  }
  return value;
}

/**
 * Frees the engine object `inner` made in engine generation `generation` (one made before a
 * restart of the engine went with the old instance); answers undefined, for the field.
 */
function release(inner, generation) {
  if (inner !== undefined && generation === engine.generation) inner.free();
  return undefined;
}

function freed(what) {
  const diagnostics = `this ${what} was freed; make a new one`;
  return new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
}

export function engineMemoryBytes() {
  return wasm.initSync().memory.buffer.byteLength;
}

/**
 * Reads a FHIR resource by the R4 JSON rules and returns its `{ resourceType, id }`.
 *
 * @param {string | Uint8Array | ArrayBuffer | object} input FHIR JSON text, its UTF-8 bytes, or a parsed object.
 * @returns {{ resourceType: string, id?: string }}
 * @throws {FhirError} status 400, one issue per violation with element path, line and column.
 * @example
 * inspect('{"resourceType":"Patient","id":"example"}'); // { resourceType: "Patient", id: "example" }
 */
export function inspect(input) {
  const bytes = toBytes(input);
  return call(() => wasm.inspect(bytes));
}

/**
 * Reads a FHIR resource by the R4 JSON rules and writes it back in canonical form: elements in
 * the order of the specification, each primitive's `_name` companion after it, numbers exactly
 * as written.
 *
 * @param {string | Uint8Array | ArrayBuffer | object} input FHIR JSON text, its UTF-8 bytes, or a parsed object.
 * @param {{ pretty?: boolean }} [options] `pretty` (default true): two-space indentation; false: compact.
 * @returns {string}
 * @throws {FhirError} status 400, one issue per violation with element path, line and column.
 * @example
 * format('{"id":"a","resourceType":"Patient"}', { pretty: false }); // '{"resourceType":"Patient","id":"a"}'
 */
export function format(input, { pretty = true } = {}) {
  const bytes = toBytes(input);
  return call(() => wasm.format(bytes, pretty));
}

/**
 * Validates a resource against the FHIR R4 base specification: the FHIR JSON rules,
 * cardinalities, primitive formats, required bindings whose codes the engine carries, and every
 * invariant of the core definitions. An invalid resource is a result, not an exception.
 *
 * @param {string | Uint8Array | ArrayBuffer | object} input FHIR JSON.
 * @param {{ securityChecks?: boolean, noHtmlInMarkdown?: boolean, allowComments?: boolean, skipContained?: boolean, profiles?: FhirProfiles, profile?: string }} [options]
 *   `securityChecks` makes strings that embed HTML tags errors, `noHtmlInMarkdown` markdown that
 *   does; `allowComments` reads JSON text with `//` and `/* *\/` comments; `skipContained` leaves
 *   contained resources unchecked; `profiles` are checked when the resource claims them, and
 *   `profile` (a URL) always.
 * @returns {{ resourceType: "OperationOutcome", issue: object[] }} one issue per finding, each
 *   with severity, code, diagnostics and `expression` (the element's FHIRPath location); a
 *   single information issue when nothing was found.
 * @example
 * validate({ resourceType: "Patient", contact: [{ gender: "male" }] }).issue[0].diagnostics;
 * // "pat-1: SHALL at least contain a contact's details or a reference to an organization"
 */
export function validate(
  input,
  { securityChecks = false, noHtmlInMarkdown = false, allowComments = false, skipContained = false, profiles, profile } = {},
) {
  const bytes = toBytes(input);
  if (profiles !== undefined && !(profiles instanceof FhirProfiles)) {
    const diagnostics = `expected profiles as a FhirProfiles, found ${describe(profiles)}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
  }
  if (profile !== undefined && typeof profile !== "string") {
    const diagnostics = `expected profile as a URL string, found ${describe(profile)}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
  }
  const set = profiles ?? (profile !== undefined ? new FhirProfiles() : undefined);
  const flags = [securityChecks, noHtmlInMarkdown, allowComments, skipContained].map(Boolean);
  const text = set
    ? call(() => set.handle.validate(bytes, ...flags, profile))
    : call(() => wasm.validate(bytes, ...flags));
  return JSON.parse(text);
}

/**
 * Profiles and value sets for validation: StructureDefinitions (US Core, QI-Core, an IG's own),
 * ValueSets, or Bundles of them. A resource is checked against the loaded profiles it claims in
 * `meta.profile`, and against the one given as `validate(resource, { profiles, profile })`.
 *
 * @example
 * const profiles = new FhirProfiles([usCorePatientDefinition, raceValueSet]);
 * validate(patient, { profiles, profile: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient" });
 */
export class FhirProfiles {
  #set = new wasm.ProfileSet();
  #sources = [];

  /**
   * @param {Iterable<string | Uint8Array | ArrayBuffer | object>} [resources]
   * @throws {FhirError} status 400 when one is not a FHIR resource.
   */
  constructor(resources = []) {
    for (const resource of resources) this.add(resource);
  }

  /**
   * Loads a StructureDefinition, a ValueSet, a Questionnaire, or a Bundle of them.
   * QuestionnaireResponses naming a loaded Questionnaire are checked against it.
   * @param {string | Uint8Array | ArrayBuffer | object} resource
   * @returns {number} how many definitions it loaded.
   * @throws {FhirError}
   */
  add(resource) {
    const bytes = toBytes(resource);
    const count = call(() => this.#set.add(bytes));
    this.#sources.push(bytes);
    return count;
  }

  /** @internal The resources loaded, as FHIR JSON bytes. */
  get sources() {
    return [...this.#sources];
  }

  /** The URLs of the loaded profiles. */
  get urls() {
    return this.#set.urls();
  }

  /** @internal */
  get handle() {
    return this.#set;
  }
}

/**
 * The version of the engine inside the Wasm module.
 * @returns {string}
 */
export function version() {
  return wasm.version();
}

/**
 * A resource read once and held by the engine, so that many expressions can be evaluated on
 * it without reading its JSON again. Memory is released when the object is garbage-collected.
 *
 * Once evaluated a second time, the resource also keeps its JSON as frozen JS objects (as
 * {@link FhirResource#toJSON} gives it), where plain paths are answered without a call into
 * the engine; whole resources among such results (a Bundle's entries, contained resources)
 * are those frozen objects, the same each time (copy one, `structuredClone(result)`, to
 * change it). {@link FhirResource#free} lets go of them too.
 *
 * @example
 * const patient = parseResource('{"resourceType":"Patient","name":[{"family":"Chalmers"}]}');
 * evaluate(patient, "Patient.name.family"); // ["Chalmers"]
 */
export class FhirResource {
  #parsed;
  #generation = engine.generation;
  #warnings = [];
  #type;
  /** The resource's JSON as frozen objects, once made (see {@link FhirResource}). */
  #json;
  /** Evaluations asking for {@link FhirResource#json} before it was made. */
  #asked = 0;

  /**
   * @param {string | Uint8Array | ArrayBuffer | object} input FHIR JSON.
   * @param {{ strict?: boolean }} [options] `strict: false` reads data from elsewhere
   *   leniently: elements that break the FHIR JSON rules (unknown elements, wrong types, empty
   *   values) are left out, each with a warning in {@link FhirResource#warnings}, instead of
   *   refusing the whole resource.
   * @throws {FhirError} status 400 when the input is not a FHIR resource (strict), or not JSON
   *   or without a known `resourceType` (lenient).
   */
  constructor(input, options) {
    const { strict = true } = options ?? {};
    const bytes = toBytes(input);
    if (strict !== false) {
      this.#parsed = call(() => new wasm.ParsedResource(bytes));
      return;
    }
    this.#parsed = call(() => wasm.ParsedResource.lenient(bytes));
    const warnings = this.#parsed.warnings;
    if (warnings !== undefined) this.#warnings = JSON.parse(warnings).issue;
  }

  /**
   * What a lenient read left out: OperationOutcome issues (severity `warning`, with the
   * element's `expression`, and its line and column as the `operationoutcome-issue-line` and
   * `-col` extensions); empty when nothing was.
   * @returns {object[]}
   */
  get warnings() {
    return this.#warnings;
  }

  /** @returns {string} */
  get resourceType() {
    const handle = this.handle;
    return (this.#type ??= handle.resourceType);
  }

  /**
   * The resource's JSON as frozen objects, made when asked a second time (one evaluation is
   * cheaper in the engine than making them); `undefined` until then, and for a resource of
   * an engine that has since restarted (which the engine then reports).
   * @internal
   */
  [HELD_JSON]() {
    const handle = this.handle;
    if (this.#generation !== engine.generation) {
      this.#json = undefined;
      return undefined;
    }
    if (this.#json === undefined && ++this.#asked >= 2) this.#json = deepFreeze(JSON.parse(handle.toJsonText()));
    return this.#json;
  }

  /** The resource as FHIR JSON (canonical form). */
  toJSON() {
    return JSON.parse(this.handle.toJsonText());
  }

  /**
   * Gives the engine memory back now, instead of when the object is garbage-collected (which
   * a synchronous loop never lets happen). Using the resource afterwards throws; freeing it
   * again does nothing. `using resource = parseResource(...)` frees it at the end of the block.
   */
  free() {
    this.#parsed = release(this.#parsed, this.#generation);
    this.#json = undefined;
  }

  [DISPOSE]() {
    this.free();
  }

  /** @internal */
  get handle() {
    if (this.#parsed === undefined) throw freed("FhirResource");
    return this.#parsed;
  }
}

/**
 * Reads a resource into the engine (see {@link FhirResource}).
 * @param {string | Uint8Array | ArrayBuffer | object} input
 * @param {{ strict?: boolean }} [options] `strict: false`: read leniently (see {@link FhirResource}).
 * @returns {FhirResource}
 * @throws {FhirError}
 */
export function parseResource(input, options) {
  return new FhirResource(input, options);
}

/**
 * Many resources held by the engine, so that an expression can be evaluated over all of them
 * in one call with {@link CompiledFhirPath.evaluateEach} (indexing a whole record).
 *
 * Whole resources among the results of `evaluateEach` (the set's resources themselves, a
 * Bundle's entries, contained resources) are read into JavaScript once per set and shared:
 * each later result naming the same resource, from any expression, is the same frozen object
 * (copy it, `structuredClone(result)`, to change it). Other results are new values each time.
 * The set keeps the shared objects, in JS memory, until it is freed.
 *
 * @example
 * const set = new FhirResourceSet(bundle.entry.map((entry) => entry.resource));
 * compile("Observation.code.coding.code").evaluateEach(set); // one result array per resource
 */
export class FhirResourceSet {
  #set = new wasm.ParsedResourceSet();
  #generation = engine.generation;
  #strict;
  #warnings = [];
  /** Resources in the set read into JS by evaluateEach, by their place in the engine. */
  #shared = new Map();

  /**
   * @param {Iterable<string | Uint8Array | ArrayBuffer | object>} [resources]
   * @param {{ strict?: boolean }} [options] `strict: false`: each resource is read leniently
   *   (see {@link FhirResource}), and what was left out is listed in {@link FhirResourceSet#warnings}.
   * @throws {FhirError} status 400 when one is not a FHIR resource.
   */
  constructor(resources = [], options) {
    this.#strict = (options ?? {}).strict !== false;
    for (const resource of resources) this.add(resource);
  }

  /**
   * Adds a resource; returns its position in the set.
   * @param {string | Uint8Array | ArrayBuffer | object} resource
   * @returns {number}
   * @throws {FhirError}
   */
  add(resource) {
    const bytes = toBytes(resource);
    const set = this.handle;
    if (this.#strict) return call(() => set.add(bytes));
    const warnings = call(() => set.addLenient(bytes));
    const position = set.size - 1;
    if (warnings !== undefined) this.#warnings.push({ position, issue: JSON.parse(warnings).issue });
    return position;
  }

  /**
   * What lenient reads left out: for each resource where something was, its position in the
   * set and the OperationOutcome issues (as {@link FhirResource#warnings}).
   * @returns {{ position: number, issue: object[] }[]}
   */
  get warnings() {
    return this.#warnings;
  }

  /** How many resources the set holds. */
  get size() {
    return this.handle.size;
  }

  /** Gives the engine memory back now (see {@link FhirResource#free}). */
  free() {
    this.#set = release(this.#set, this.#generation);
    this.#shared.clear();
  }

  /**
   * Puts the set's shared objects in the place of `[address, json?]` in results; false when
   * one is missing (JS no longer has what the engine sent).
   */
  [RESOLVE_SHARED](results) {
    for (const list of results) {
      for (let at = 0; at < list.length; at += 1) {
        const item = list[at];
        if (!Array.isArray(item)) continue;
        let value = this.#shared.get(item[0]);
        if (item.length > 1) {
          value = deepFreeze(item[1]);
          this.#shared.set(item[0], value);
        } else if (value === undefined) {
          return false;
        }
        list[at] = value;
      }
    }
    return true;
  }

  [DISPOSE]() {
    this.free();
  }

  /** @internal */
  get handle() {
    if (this.#set === undefined) throw freed("FhirResourceSet");
    return this.#set;
  }
}

function variableBytes(variables) {
  if (variables === undefined || variables === null) return undefined;
  if (typeof variables !== "object" || Array.isArray(variables)) {
    const diagnostics = `expected variables as an object of name to value, found ${describe(variables)}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
  }
  const plain = {};
  for (const [name, value] of Object.entries(variables)) {
    const values = Array.isArray(value) ? value : [value];
    plain[name] = values.map((item) => (item instanceof FhirResource ? item.toJSON() : item));
  }
  return toBytes(plain);
}

/** Projections in a row needing the whole resource after which an expression reads whole objects. */
const PROJECTION_MISSES = 8;
/** Deepest nesting a projection follows; deeper (or cyclic) objects are read whole. */
const PROJECTION_DEPTH = 100;
/** Resource types whose projection trees an expression keeps (R4 has 146). */
const SHAPE_TYPES = 200;

/**
 * The buffer in Wasm memory that projections and their results go through, so that a call
 * allocates nothing across the boundary (made on first use, and again after a restart).
 */
let shared;
onRestart(() => {
  shared = undefined;
});
const decoder = new TextDecoder();

function sharedBuffer() {
  if (shared === undefined) {
    const buffer = new wasm.ProjectionBuffer();
    shared = { buffer, ptr: buffer.ptr, capacity: buffer.capacity, memory: wasm.initSync().memory, bytes: undefined, busy: false };
  }
  return shared;
}

/** The bytes of Wasm memory, seen anew once memory has grown (which detaches the old view). */
function memoryBytes(io) {
  if (io.bytes === undefined || io.bytes.byteLength === 0) io.bytes = new Uint8Array(io.memory.buffer);
  return io.bytes;
}

/**
 * While a projection is written: the view of Wasm memory it goes into, the position of the
 * next byte, and the end of the shared buffer there.
 */
let out = new Uint8Array(0);
let pos = 0;
let limit = 0;
const { propertyIsEnumerable } = Object.prototype;
/** The objects written whole (see {@link Shape}), when some were. */
let wholes;
/** True when bytes were written to a view of memory that had grown away. */
let lost = false;
const encoder = new TextEncoder();

/** Makes room for `more` bytes after `pos`, growing the shared buffer (which may move it). */
function reserve(more) {
  if (pos + more <= limit) return;
  // Memory grew under the writer (see evaluateShared): what it wrote since went nowhere.
  if (out.byteLength === 0) lost = true;
  const io = shared;
  const used = pos - io.ptr;
  io.buffer.reserve(used + more);
  io.ptr = io.buffer.ptr;
  io.capacity = io.buffer.capacity;
  out = memoryBytes(io);
  pos = io.ptr + used;
  limit = io.ptr + io.capacity;
}

/**
 * A projection's tree (see `projectionShape` in the engine): the properties kept in an object
 * at this node, and the node of each; `whole` where objects may be results, kept whole:
 * `true`, or the resource types for which they are.
 * @typedef {{ keys: string[], children: Shape[], whole?: true | Set<string> }} Shape
 */
/** @type {Shape} */
const LEAF = Object.freeze({ keys: [], children: [] });

/** Reads the engine's `a,b(c,d(e)*),f*[Observation|Patient]` into a {@link Shape}. */
function parseShape(text) {
  let at = 0;
  const node = () => {
    const keys = [];
    const children = [];
    while (at < text.length && text[at] !== ")") {
      let end = at;
      while (end < text.length && !",()*".includes(text[end])) end++;
      keys.push(text.slice(at, end));
      at = end;
      let child = LEAF;
      if (text[at] === "(") {
        at++;
        child = node();
        at++; // ")"
      }
      if (text[at] === "*") {
        at++;
        let whole = true;
        if (text[at] === "[") {
          const close = text.indexOf("]", at);
          whole = new Set(text.slice(at + 1, close).split("|"));
          at = close + 1;
        }
        child = { keys: child.keys, children: child.children, whole };
      }
      children.push(child);
      if (text[at] === ",") at++;
    }
    return keys.length === 0 ? LEAF : { keys, children };
  };
  return node();
}

/**
 * Evaluates `compiled` on the projection of `resource` by `shape` (a tree of the properties
 * to keep) or `keep` (a set of names kept at every level), written into the shared buffer.
 * The results, or `undefined` when the resource is not plain JSON data, the engine declines
 * (see #evaluateProjection), or the buffer is in use by the call that reached this one
 * through a getter of its object.
 */
function evaluateShared(compiled, resource, shape, keep) {
  const io = sharedBuffer();
  // A getter of the object evaluating meanwhile reads its resource whole.
  if (io.busy) return undefined;
  io.busy = true;
  let written;
  let writtenWhole;
  try {
    out = memoryBytes(io);
    pos = io.ptr;
    limit = io.ptr + io.capacity;
    lost = false;
    wholes = undefined;
    startChecks();
    if (!(shape !== undefined ? writeShaped(resource, shape, 0) : writeProjection(resource, keep, 0))) return undefined;
    // A getter of the object that called into the engine may have grown its memory, which
    // leaves the view written to empty: what went there since was lost.
    if (lost || out.byteLength === 0) return undefined;
    written = compiled.evaluateProjectionIn(io.buffer, pos - io.ptr);
  } finally {
    io.busy = false;
    // The objects written whole are not kept past the call.
    writtenWhole = wholes;
    wholes = undefined;
  }
  if (written < 0) return undefined;
  if (written > io.capacity) {
    // The result did not fit: the buffer grew to hold it.
    io.ptr = io.buffer.ptr;
    io.capacity = io.buffer.capacity;
  }
  const bytes = memoryBytes(io);
  if (bytes[io.ptr] === 0x52) return ownObjects(resource, decoder.decode(bytes.subarray(io.ptr + 1, io.ptr + written)), writtenWhole);
  return readResults(bytes, io.ptr, io.ptr + written) ?? JSON.parse(decoder.decode(bytes.subarray(io.ptr, io.ptr + written)));
}

/**
 * Results that are all objects, given by where they lie in the resource (`entry.3.resource`,
 * `;` between results): the resource's own objects, when each was written whole (and so read
 * by the engine, every part of it); `undefined` otherwise, to read the resource whole.
 */
function ownObjects(resource, paths, written) {
  const results = [];
  for (const path of paths.split(";")) {
    let value = resource;
    if (path !== "") {
      for (const step of path.split(".")) {
        const code = step.charCodeAt(0);
        value = code >= 0x30 && code <= 0x39 ? (Array.isArray(value) ? value[Number(step)] : undefined) : value?.[step];
      }
    }
    if (written === undefined || !written.has(value)) return undefined;
    results.push(value);
  }
  return results;
}

/**
 * The results' JSON array, `bytes` from `start` to `end`, read straight from them when it
 * holds only ASCII strings with nothing escaped, numbers, booleans and nulls (as most do);
 * `undefined` otherwise.
 * @param {Uint8Array} bytes
 * @param {number} start
 * @param {number} end
 */
function readResults(bytes, start, end) {
  if (end - start < 2 || bytes[start] !== 0x5b) return undefined;
  const results = [];
  if (bytes[start + 1] === 0x5d) return end === start + 2 ? results : undefined;
  let at = start + 1;
  for (;;) {
    const first = bytes[at];
    if (first === 0x22) {
      let text = "";
      for (at++; ; at++) {
        if (at >= end) return undefined;
        const code = bytes[at];
        if (code === 0x22) break;
        if (code === 0x5c || code > 0x7f) return undefined;
        text += String.fromCharCode(code);
      }
      at++;
      results.push(text);
    } else if (first === 0x2d || (first >= 0x30 && first <= 0x39)) {
      let text = "";
      while (at < end && bytes[at] !== 0x2c && bytes[at] !== 0x5d) text += String.fromCharCode(bytes[at++]);
      // A JSON number's text reads to the same number as JSON.parse gives.
      results.push(Number(text));
    } else if (first === 0x74 && bytes[at + 3] === 0x65) {
      results.push(true);
      at += 4;
    } else if (first === 0x66 && bytes[at + 4] === 0x65) {
      results.push(false);
      at += 5;
    } else if (first === 0x6e && bytes[at + 3] === 0x6c) {
      results.push(null);
      at += 4;
    } else {
      return undefined;
    }
    const next = bytes[at++];
    if (next === 0x5d) return at === end ? results : undefined;
    if (next !== 0x2c) return undefined;
  }
}

function writeAscii(text) {
  reserve(text.length);
  for (let idx = 0; idx < text.length; idx++) out[pos++] = text.charCodeAt(idx);
}

function writeByte(byte) {
  reserve(1);
  out[pos++] = byte;
}

/** A JSON string in UTF-8, escaped as JSON.stringify escapes it. */
function writeString(text) {
  reserve(text.length * 6 + 2);
  const bytes = out;
  let at = pos;
  bytes[at++] = 0x22;
  for (let idx = 0; idx < text.length; idx++) {
    const code = text.charCodeAt(idx);
    if (code < 0x80) {
      if (code === 0x22 || code === 0x5c) {
        bytes[at++] = 0x5c;
        bytes[at++] = code;
      } else if (code < 0x20) {
        at = writeEscape(bytes, at, code);
      } else {
        bytes[at++] = code;
      }
    } else if (code < 0x800) {
      bytes[at++] = 0xc0 | (code >> 6);
      bytes[at++] = 0x80 | (code & 0x3f);
    } else if (code >= 0xd800 && code <= 0xdfff) {
      const next = text.charCodeAt(idx + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const point = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        bytes[at++] = 0xf0 | (point >> 18);
        bytes[at++] = 0x80 | ((point >> 12) & 0x3f);
        bytes[at++] = 0x80 | ((point >> 6) & 0x3f);
        bytes[at++] = 0x80 | (point & 0x3f);
        idx++;
      } else {
        // A lone surrogate: escaped, as JSON.stringify writes it.
        at = writeEscape(bytes, at, code);
      }
    } else {
      bytes[at++] = 0xe0 | (code >> 12);
      bytes[at++] = 0x80 | ((code >> 6) & 0x3f);
      bytes[at++] = 0x80 | (code & 0x3f);
    }
  }
  bytes[at++] = 0x22;
  pos = at;
}

/** `"key":`, after a comma unless `first`. The key is printable ASCII with nothing to escape. */
function writeKey(key, first) {
  reserve(key.length + 4);
  if (!first) out[pos++] = 0x2c;
  out[pos++] = 0x22;
  for (let idx = 0; idx < key.length; idx++) out[pos++] = key.charCodeAt(idx);
  out[pos++] = 0x22;
  out[pos++] = 0x3a;
}

/** True for a key of printable ASCII with nothing to escape (every FHIR element name). */
function plainKey(key) {
  for (let idx = 0; idx < key.length; idx++) {
    const code = key.charCodeAt(idx);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return false;
  }
  return true;
}


/** `\uXXXX` for a UTF-16 code unit; returns the position after it. */
function writeEscape(bytes, at, code) {
  const hex = code.toString(16).padStart(4, "0");
  bytes[at++] = 0x5c;
  bytes[at++] = 0x75;
  for (let digit = 0; digit < 4; digit++) bytes[at++] = hex.charCodeAt(digit);
  return at;
}

/**
 * Writes a JSON scalar as JSON.stringify writes it: true when `value` was one (`false` for
 * objects, arrays and what JSON cannot hold).
 */
function writeScalar(value) {
  switch (typeof value) {
    case "string":
      writeString(value);
      return true;
    case "number":
      writeAscii(Number.isFinite(value) ? String(value) : "null");
      return true;
    case "boolean":
      writeAscii(value ? "true" : "false");
      return true;
    default:
      if (value === null) {
        writeAscii("null");
        return true;
      }
      return false;
  }
}

/**
 * Writes what `JSON.stringify(value, [...keep])` writes into `out`, in UTF-8; false for what
 * is not plain JSON data (class instances, `toJSON`, cycles, BigInt).
 */
function writeProjection(value, keep, depth) {
  if (writeScalar(value)) return true;
  if (typeof value !== "object" || depth > PROJECTION_DEPTH || !plainData(value)) return false;
  if (Array.isArray(value)) {
    writeByte(0x5b);
    for (let idx = 0; idx < value.length; idx++) {
      if (idx > 0) writeByte(0x2c);
      const item = value[idx];
      if (invisible(item)) writeAscii("null");
      else if (!writeProjection(item, keep, depth + 1)) return false;
    }
    writeByte(0x5d);
    return true;
  }
  writeByte(0x7b);
  let first = true;
  for (const key of Object.keys(value)) {
    const item = value[key];
    if (invisible(item) || !keep.has(key)) continue;
    if (!plainKey(key)) return false;
    writeKey(key, first);
    first = false;
    if (!writeProjection(item, keep, depth + 1)) return false;
  }
  writeByte(0x7d);
  // Nothing kept: an empty object breaks the FHIR JSON rules, an emptied one is read as such
  // (and one JSON.stringify may write empty is read whole).
  return !first || members(value) === 1;
}

/**
 * Writes `value` keeping, in each object, only the properties of its node of `shape`: what
 * {@link writeProjection} writes, with the names of the node instead of `keep`.
 */
function writeShaped(value, shape, depth) {
  if (writeScalar(value)) return true;
  if (typeof value !== "object" || depth > PROJECTION_DEPTH || !plainData(value)) return false;
  if (Array.isArray(value)) {
    writeByte(0x5b);
    for (let idx = 0; idx < value.length; idx++) {
      if (idx > 0) writeByte(0x2c);
      const item = value[idx];
      if (invisible(item)) writeAscii("null");
      else if (!writeShaped(item, shape, depth + 1)) return false;
    }
    writeByte(0x5d);
    return true;
  }
  const { keys, children, whole } = shape;
  // (The type read once: a getter might answer otherwise the next time.)
  const type = whole === undefined || whole === true ? undefined : value.resourceType;
  if (whole === true || (type !== undefined && whole.has(type))) {
    // A resource that may be a result: checked here by the FHIR JSON rules, and handed back
    // as it stands; the engine reads only what the expression reads. Others are written
    // whole, for the engine to read.
    if (whole === true || !checkResource(value, depth, type)) return writeWhole(value);
    (wholes ??= new Set()).add(value);
  }
  writeByte(0x7b);
  let first = true;
  for (let idx = 0; idx < keys.length; idx++) {
    const key = keys[idx];
    // Own enumerable properties only, as JSON.stringify writes them.
    const item = value[key];
    if (invisible(item) || !propertyIsEnumerable.call(value, key)) continue;
    writeKey(key, first);
    first = false;
    if (!writeShaped(item, children[idx], depth + 1)) return false;
  }
  writeByte(0x7d);
  // Nothing kept: an empty object breaks the FHIR JSON rules, an emptied one is read as such
  // (and one JSON.stringify may write empty is read whole).
  return !first || members(value) === 1;
}

/**
 * Writes an object that may be a result whole, as JSON.stringify writes it (which reads it as
 * the whole resource would be read: `toJSON`, cycles and all), and notes it.
 */
function writeWhole(value) {
  const text = JSON.stringify(value);
  // The engine reads a projection's objects even when empty (those it emptied): one empty
  // here breaks the rules, and the whole resource is read to say so (a string holding `{}`
  // is read whole too).
  if (text === undefined || text.includes("{}")) return false;
  reserve(text.length * 3);
  pos += encoder.encodeInto(text, out.subarray(pos, limit)).written;
  (wholes ??= new Set()).add(value);
  return true;
}


/**
 * A compiled FHIRPath expression: compile once, evaluate many times.
 */
export class CompiledFhirPath {
  #compiled;
  #generation = engine.generation;
  /**
   * The property names the expression can read, for evaluating on a plain object's projection;
   * `undefined` until asked, `null` when it may read anything or projections keep failing.
   */
  #names;
  /** The same names as a set. */
  #keep;
  /**
   * By resource type, how the expression reads a plain object of that type: the {@link Route}
   * it follows, when it is a plain path to primitive values, and the tree of the properties
   * it can read (a {@link Shape}); each `undefined` when the engine gives none.
   */
  #plans = new Map();
  /** Projections in a row that needed the whole resource. */
  #misses = 0;

  /** @internal */
  constructor(compiled) {
    this.#compiled = compiled;
  }

  /** Gives the engine memory back now (see {@link FhirResource#free}). */
  free() {
    this.#compiled = release(this.#compiled, this.#generation);
  }

  [DISPOSE]() {
    this.free();
  }

  #handle() {
    if (this.#compiled === undefined) throw freed("compiled expression");
    return this.#compiled;
  }

  /**
   * Evaluates the expression with `resource` as input, `%resource` and `%context`; with
   * `null` or `undefined`, on an empty input (for expressions that need no resource).
   *
   * @param {FhirResource | string | Uint8Array | ArrayBuffer | object | null | undefined} resource
   * @param {{ variables?: Record<string, unknown>, strict?: boolean, onWarning?: (issues: object[]) => void }} [options]
   *   `variables`: values for `%name` variables. `strict: false`: a resource given as JSON is
   *   read leniently (see {@link FhirResource}); `onWarning` is called with the issues of what
   *   was left out, when something was.
   *
   *   A plain object is read only as far as the expression reaches: the elements it can
   *   navigate to are read by the FHIR JSON rules (an error there is a `FhirError`, as for the
   *   whole resource), the others are not read at all. Use {@link parseResource} or
   *   `validate` to check a whole resource; JSON text and bytes are always read whole. Objects
   *   among the results of a plain object are its own (read whole by the same rules), not
   *   copies, as other FHIRPath libraries give them.
   * @returns {unknown[]} FHIR primitives as JSON values, complex values as FHIR JSON objects,
   *   dates and times as strings, quantities as `{ value, unit }`.
   * @throws {FhirError} status 400 when the resource does not read or evaluation fails.
   */
  evaluate(resource, options) {
    // The common case (no variables, a held resource) does no extra allocation per call.
    const vars = options === undefined || options === null || options.variables === undefined ? undefined : variableBytes(options.variables);
    const compiled = this.#handle();
    if (options?.strict === false && resource !== null && resource !== undefined && !(resource instanceof FhirResource)) {
      const { onWarning } = options;
      if (onWarning !== undefined && typeof onWarning !== "function") {
        const diagnostics = `expected onWarning as a function, found ${describe(onWarning)}`;
        throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
      }
      const [results, warnings] = JSON.parse(call(() => compiled.evaluateJsonLenient(toBytes(resource), vars)));
      if (warnings !== null) onWarning?.(warnings.issue);
      return results;
    }
    let projected = false;
    if (resource instanceof FhirResource && vars === undefined) {
      const results = call(() => this.#evaluateHeld(compiled, resource));
      if (results !== undefined) return results;
    } else if (resource !== null && typeof resource === "object" && !(resource instanceof FhirResource) && !ArrayBuffer.isView(resource) && !(resource instanceof ArrayBuffer)) {
      const results = this.#evaluateProjection(compiled, resource, vars);
      if (results !== undefined) return results;
      projected = vars === undefined;
    }
    let text;
    try {
      // No resource: an expression that needs none (`1 + 1`, `today()`) runs on empty input.
      text =
        resource === null || resource === undefined
          ? compiled.evaluateEmpty(vars)
          : resource instanceof FhirResource
            ? compiled.evaluateParsed(resource.handle, vars)
            : compiled.evaluateJson(toBytes(resource), vars);
    } catch (thrown) {
      throw toFhirError(thrown);
    }
    // The whole object answered where its projection could not (a resource that breaks the
    // rules does not count): an expression whose results are whole objects misses every
    // time, and stops trying.
    if (projected && ++this.#misses >= PROJECTION_MISSES) this.#names = null;
    return JSON.parse(text);
  }

  /**
   * On a plain object, reads only what the expression can reach: the object's projection
   * (every object it reaches, with only the properties the expression can read there: by the
   * tree the engine gives for the resource's type, else the names it reads anywhere), checked
   * by the FHIR JSON rules. The results, or `undefined` when that cannot answer (the
   * projection does not read, or the result depends on what it left out): the caller then
   * reads the whole object, which gives the answer or the error.
   */
  #evaluateProjection(compiled, resource, vars) {
    // With variables, the whole object is read.
    if (vars !== undefined) return undefined;
    let results;
    try {
      if (this.#names === undefined) this.#names = compiled.projection() ?? null;
      if (this.#names === null) return undefined;
      const plan = this.#planOf(compiled, resource.resourceType);
      // A plain path to primitive values: followed here, where it can be.
      if (plan?.route !== undefined) results = followRoute(resource, plan.route);
      if (results === undefined) {
        const shape = plan?.shape;
        if (shape === undefined && this.#keep === undefined) this.#keep = new Set(this.#names);
        results = evaluateShared(compiled, resource, shape, this.#keep);
      }
    } catch (thrown) {
      // The engine failed, or this expression was made before it restarted.
      if (isTrap(thrown) || (thrown instanceof Error && /stale object/.test(thrown.message))) throw toFhirError(thrown);
      // The object's own getters threw: read whole, which reports it as any unreadable
      // resource is reported.
      return undefined;
    }
    if (results !== undefined) this.#misses = 0;
    return results;
  }

  /**
   * On a held resource, a plain path followed on its JSON as frozen objects (see
   * {@link FhirResource}); `undefined` where the engine answers.
   */
  #evaluateHeld(compiled, resource) {
    const route = this.#planOf(compiled, resource.resourceType)?.route;
    if (route === undefined) return undefined;
    const json = resource[HELD_JSON]();
    return json === undefined ? undefined : followHeld(json, route);
  }

  /**
   * How the expression reads a resource of `type` (see `#plans`); `undefined` for a type
   * that is not a string.
   */
  #planOf(compiled, type) {
    if (typeof type !== "string") return undefined;
    let plan = this.#plans.get(type);
    if (plan === undefined) {
      const route = compiled.projectionRoute(type);
      const shape = compiled.projectionShape(type);
      plan = { route: route === undefined ? undefined : parseRoute(route), shape: shape === undefined ? undefined : parseShape(shape) };
      // Resource types are few; other strings are not kept.
      if (this.#plans.size < SHAPE_TYPES) this.#plans.set(type, plan);
    }
    return plan;
  }

  /**
   * Evaluates the expression on every resource of a set, in one call into the engine.
   * @param {FhirResourceSet} set
   * @param {{ variables?: Record<string, unknown> }} [options]
   * @returns {unknown[][]} one result array per resource, in the set's order. Resources
   *   among the results are the set's shared, frozen objects (see {@link FhirResourceSet}),
   *   except when `variables` are given.
   * @throws {FhirError} status 400 when an evaluation fails; 500 should the engine name a
   *   shared resource it never sent.
   */
  evaluateEach(set, { variables } = {}) {
    const vars = variableBytes(variables);
    const compiled = this.#handle();
    const handle = set.handle;
    for (let attempt = 0; ; attempt += 1) {
      const text = call(() => compiled.evaluateEach(handle, vars));
      // "T": every result is a string, sent as itself; "V": strings, numbers, booleans and
      // nulls, each sent as its text (see `eachValue`).
      if (text.charCodeAt(0) === 84 || text.charCodeAt(0) === 86) return eachValue(text);
      // "S": some results are whole resources of the set, shared (see above).
      if (text.charCodeAt(0) !== 83) return JSON.parse(text);
      const results = JSON.parse(text.slice(1));
      if (set[RESOLVE_SHARED](results)) return results;
      if (attempt > 0) throw new FhirError("the engine named a shared resource it did not send", { status: 500, outcome: errorOutcome("exception", "the engine named a shared resource it did not send") });
      handle.forgetShared();
    }
  }
}

/**
 * The results of `evaluateEach` when every one is a string, a number, a boolean or null:
 * `T<resources>:` or `V<resources>:`, then the values' texts in order, separated by U+0001
 * (which a result string then never holds), then, after `V` only, one character per value
 * telling its kind (`s` string, `n` number, `t` true, `f` false, `z` null), then one character
 * per resource whose code is its number of results. Splitting the text builds the arrays
 * several times faster than `JSON.parse`.
 * @param {string} text
 * @returns {unknown[][]}
 */
function eachValue(text) {
  const colon = text.indexOf(":");
  const resources = Number(text.slice(1, colon));
  const countsAt = text.length - resources;
  let total = 0;
  for (let at = countsAt; at < text.length; at += 1) total += text.charCodeAt(at);
  const kindsAt = text.charCodeAt(0) === 86 ? countsAt - total : countsAt;
  const values = total === 0 ? [] : text.slice(colon + 1, kindsAt).split("\u0001");
  if (kindsAt !== countsAt) {
    for (let index = 0; index < total; index += 1) {
      const kind = text.charCodeAt(kindsAt + index);
      // A number's text is as JSON writes it, which Number reads as JSON.parse does.
      if (kind !== 115) values[index] = kind === 110 ? Number(values[index]) : kind === 116 ? true : kind === 102 ? false : null;
    }
  }
  const results = new Array(resources);
  let next = 0;
  for (let index = 0; index < resources; index += 1) {
    const count = text.charCodeAt(countsAt + index);
    results[index] = count === 1 ? [values[next]] : values.slice(next, next + count);
    next += count;
  }
  return results;
}

/**
 * Compiles a FHIRPath expression. With `resourceType`, the expression is checked against the
 * R4 model (unknown elements, wrong type names) before any evaluation.
 *
 * @param {string} expression
 * @param {{ resourceType?: string }} [options]
 * @returns {CompiledFhirPath}
 * @throws {FhirError} status 400 for a syntax or semantic error, with its offset.
 * @example
 * const given = compile("Patient.name.given", { resourceType: "Patient" });
 * given.evaluate({ resourceType: "Patient", name: [{ given: ["Peter"] }] }); // ["Peter"]
 */
export function compile(expression, { resourceType } = {}) {
  if (typeof expression !== "string") {
    const diagnostics = `expected a FHIRPath expression as a string, found ${describe(expression)}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
  }
  return new CompiledFhirPath(call(() => new wasm.CompiledExpression(expression, resourceType)));
}

const compiledCache = new Map();
const COMPILED_CACHE_SIZE = 256;
// Expressions compiled by an instance are gone with it.
onRestart(() => compiledCache.clear());

/**
 * Evaluates a FHIRPath expression on a resource (compiled expressions are cached).
 *
 * @param {FhirResource | string | Uint8Array | ArrayBuffer | object} resource
 * @param {string} expression
 * @param {{ variables?: Record<string, unknown>, strict?: boolean, onWarning?: (issues: object[]) => void }} [options]
 *   as {@link CompiledFhirPath#evaluate}.
 * @returns {unknown[]}
 * @throws {FhirError}
 * @example
 * evaluate({ resourceType: "Patient", birthDate: "1974-12-25" }, "Patient.birthDate"); // ["1974-12-25"]
 */
export function evaluate(resource, expression, options = {}) {
  let compiled = compiledCache.get(expression);
  if (compiled === undefined) {
    compiled = compile(expression);
    if (compiledCache.size >= COMPILED_CACHE_SIZE) compiledCache.delete(compiledCache.keys().next().value);
    compiledCache.set(expression, compiled);
  }
  return compiled.evaluate(resource, options);
}

/** The option names of {@link FhirService}'s `limits`, in the order the bindings take them. */
export const LIMIT_NAMES = ["maxBodyBytes", "maxParameters", "maxValues", "maxSortKeys", "maxElements", "maxEntries", "maxResponseBytes", "maxWork"];

/**
 * A FHIR R4 REST service running in this process: read, vread, create, update, patch, delete,
 * history, search, batch, transaction, `$validate` and `metadata`, over a store in memory or one
 * the host provides (see `openSqliteStore` in `hearth-fhir/sqlite` for a durable one in Node).
 *
 * Every request is bounded by `limits` (a request over one is answered 413 with an
 * OperationOutcome naming the limit). Requests naming another Host than the base URL's (421),
 * or coming from a web page of another origin than `allowedOrigins` (403), are refused. If the
 * engine ever fails (a Wasm trap), the failure is logged and a fresh engine answers the next
 * request over the same store; a service in memory then answers 503, as its data is gone.
 *
 * @example
 * const service = new FhirService({ baseUrl: "http://localhost:8787/fhir" });
 * const created = service.handle({ method: "POST", path: "Patient", body: '{"resourceType":"Patient"}' });
 * created.status; // 201
 */
export class FhirService {
  #service;
  #options;
  #generation;
  #lost = false;
  #freed = false;

  /**
   * Gives the engine memory of this service (and of its in-memory store) back now. Answering a
   * request afterwards throws; freeing it again does nothing.
   */
  free() {
    if (this.#freed) return;
    this.#freed = true;
    this.#service = release(this.#service, this.#generation);
  }

  [DISPOSE]() {
    this.free();
  }

  /**
   * @param {{ baseUrl?: string, store?: { get: Function, scan: Function, commit: Function, begin?: Function, end?: Function, reset?: Function },
   *   limits?: Record<string, number>, allowedHosts?: string[], allowedOrigins?: string[],
   *   maxMemoryBytes?: number, access?: { roles?: object | string, audit?: boolean },
   *   oauth?: { authorize: string, token: string } }} [options]
   *   `allowedHosts`: Host names answered besides the base URL's (`"*"`: any);
   *   `allowedOrigins`: web origins allowed to call across origins (`"*"`: any);
   *   `maxMemoryBytes`: with a `store`, the engine is restarted after a request that leaves its
   *   Wasm memory larger than this, to give the memory back (Wasm memory never shrinks).
   *   `access`: how requests that come with `claims` are judged: `roles` (a roles file, what
   *   each role lets `user/` scopes reach) and `audit` (default true: an AuditEvent for each).
   *   `oauth`: the SMART authorization server's endpoints, named in the CapabilityStatement.
   * @throws {FhirError} status 400 for an unknown limit name or a roles file that is not valid.
   */
  constructor({ baseUrl = "http://localhost/fhir", store, limits = {}, allowedHosts = [], allowedOrigins = [], maxMemoryBytes, access = {}, oauth, updateCreate = true } = {}) {
    for (const name of Object.keys(limits)) {
      if (!LIMIT_NAMES.includes(name)) {
        const diagnostics = `unknown limit "${name}"; the limits are ${LIMIT_NAMES.join(", ")}`;
        throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("invalid", diagnostics) });
      }
    }
    const roles = access.roles === undefined ? undefined : typeof access.roles === "string" ? access.roles : JSON.stringify(access.roles);
    this.#options = { baseUrl, store, limits, allowedHosts: allowedHosts.map(String), allowedOrigins: allowedOrigins.map(String), maxMemoryBytes, roles, audit: access.audit !== false, oauth, updateCreate: updateCreate !== false };
    this.#start();
  }

  /** Makes the engine's service in the current Wasm instance. */
  #start() {
    const { baseUrl, store, limits, allowedHosts, allowedOrigins, roles, audit, oauth, updateCreate } = this.#options;
    call(() => {
      const service = new wasm.FhirService(store, baseUrl);
      service.setLimits(...LIMIT_NAMES.map((name) => (limits[name] === undefined ? Number.NaN : Number(limits[name]))));
      service.setPolicy(baseUrl, allowedHosts, allowedOrigins);
      service.setAccess(roles, audit);
      if (oauth !== undefined) service.setOauth(oauth.authorize, oauth.token);
      if (!updateCreate) service.setUpdateCreate(false);
      this.#service = service;
    });
    this.#generation = engine.generation;
  }

  /**
   * Answers one request.
   * @param {{ method: string, path: string, query?: Iterable<[string, string]> | URLSearchParams,
   *   headers?: Record<string, string> | Iterable<[string, string]>, body?: string | Uint8Array }} request
   *   `path` is relative to the base URL (`Patient/123/_history/2`). Without `headers`, a body
   *   is sent as `application/fhir+json` (a form for `_search`). `claims`: the verified claims
   *   of the caller's access token (`{ scope, patient, fhirUser, clientId, sub, roles }`), which
   *   the answer is then limited to and recorded under; or `{ refused: { status, message,
   *   challenge } }` to answer and record a request whose token was refused. Without `claims`,
   *   the request is answered in full: only trusted callers may leave them out.
   * @returns {{ status: number, headers: [string, string][], body: string }}
   */
  handle({ method, path, query = [], headers, body = new Uint8Array(), claims }) {
    if (this.#freed) throw freed("FhirService");
    const flat = (pairs) => {
      const list = [];
      const entries = typeof pairs[Symbol.iterator] === "function" ? pairs : Object.entries(pairs);
      for (const [name, value] of entries) list.push(String(name), String(value));
      return list;
    };
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    let headerList = flat(headers ?? {});
    if (headers === undefined && bytes.length > 0) {
      const form = String(path).replace(/\/+$/, "").endsWith("_search");
      headerList = ["content-type", form ? "application/x-www-form-urlencoded" : "application/fhir+json"];
    }
    if (this.#generation !== engine.generation) {
      // The engine was restarted since this service was made.
      if (this.#options.store === undefined) this.#lost = true;
      else {
        this.#options.store.reset?.();
        this.#start();
      }
      this.#generation = engine.generation;
    }
    if (this.#lost) {
      const diagnostics = "the in-memory store was lost when the engine failed; make a new FhirService (or give it a durable store)";
      return { status: 503, headers: [["Content-Type", "application/fhir+json; charset=utf-8"]], body: JSON.stringify(errorOutcome("exception", diagnostics)) };
    }
    let answer;
    try {
      answer = call(() => this.#service.handle(String(method), String(path), flat(query), headerList, bytes, claims));
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      // After a trap, a store transaction the engine had open is ended at once, unwritten.
      if (engine.generation !== this.#generation) this.#options.store?.reset?.();
      answer = { status: err.status, headers: [["Content-Type", "application/fhir+json; charset=utf-8"]], body: JSON.stringify(err.outcome) };
    }
    const { maxMemoryBytes, store } = this.#options;
    if (maxMemoryBytes !== undefined && store !== undefined && engine.generation === this.#generation && engineMemoryBytes() > maxMemoryBytes) {
      restartEngine(`Wasm memory grew to ${engineMemoryBytes()} bytes, over maxMemoryBytes ${maxMemoryBytes}`);
    }
    return answer;
  }
}
