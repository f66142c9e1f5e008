// The public API over the Wasm glue: input conversion, FhirError, nothing FHIR-specific.
// Each entry point (entry-*.js) initialises the Wasm module before re-exporting this file.

import * as wasm from "../dist/wasm/hearth.js";
import { FhirError, errorOutcome, toFhirError } from "./error.js";

export { FhirError };

const encoder = new TextEncoder();

function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** FHIR JSON as bytes, whatever form the caller gave it in. */
function toBytes(input) {
  if (typeof input === "string") return encoder.encode(input);
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof input === "object" && input !== null) {
    let text;
    try {
      text = JSON.stringify(input);
    } catch (err) {
      const diagnostics = `expected a resource that can be written as JSON, found one that cannot: ${err.message}`;
      throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("structure", diagnostics), cause: err });
    }
    return encoder.encode(text);
  }
  const diagnostics = `expected FHIR JSON as a string, bytes or an object, found ${describe(input)}`;
  throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("structure", diagnostics) });
}

function call(fn) {
  try {
    return fn();
  } catch (thrown) {
    throw toFhirError(thrown);
  }
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
 * The version of the engine inside the Wasm module.
 * @returns {string}
 */
export function version() {
  return wasm.version();
}
