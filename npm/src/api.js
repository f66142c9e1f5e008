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
 * Reads the head of a FHIR resource: checks the input is a JSON object with a string
 * `resourceType` and returns `{ resourceType, id }`.
 *
 * @param {string | Uint8Array | ArrayBuffer | object} input FHIR JSON text, its UTF-8 bytes, or a parsed object.
 * @returns {{ resourceType: string, id?: string }}
 * @throws {FhirError} status 400 with the line and column of the problem.
 * @example
 * inspect('{"resourceType":"Patient","id":"example"}'); // { resourceType: "Patient", id: "example" }
 */
export function inspect(input) {
  const bytes = toBytes(input);
  return call(() => wasm.inspect(bytes));
}

/**
 * The version of the engine inside the Wasm module.
 * @returns {string}
 */
export function version() {
  return wasm.version();
}
