// The engine's plumbing shared by the public classes: input conversion, and the one Wasm
// instance with its restart after a trap. Not part of the public API.

import * as wasm from "../dist/wasm/hearth.js";
import { FhirError, errorOutcome, toFhirError } from "./error.js";

const encoder = new TextEncoder();

export function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** FHIR JSON as bytes, whatever form the caller gave it in. */
export function toBytes(input) {
  if (typeof input === "string") return encoder.encode(input);
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof input === "object" && input !== null) return encoder.encode(jsonText(input));
  const diagnostics = `expected FHIR JSON as a string, bytes or an object, found ${describe(input)}`;
  throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("structure", diagnostics) });
}

/** The JSON text of an object given as a resource. */
export function jsonText(input) {
  let text;
  try {
    text = JSON.stringify(input);
  } catch (err) {
    const diagnostics = `expected a resource that can be written as JSON, found one that cannot: ${err.message}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("structure", diagnostics), cause: err });
  }
  if (typeof text !== "string") {
    const diagnostics = `expected a resource that can be written as JSON, found ${describe(input)}`;
    throw new FhirError(diagnostics, { status: 400, outcome: errorOutcome("structure", diagnostics) });
  }
  return text;
}

/**
 * Counts the Wasm instances this module has had. A trap (or a stack overflow) may leave an
 * instance's memory inconsistent, so the instance is dropped and a fresh one made from the same
 * compiled module before anything else runs; objects made by the old one are refused after it.
 */
export const engine = { generation: 0 };

const restartHooks = [];

/** Runs `hook` after each restart (to drop what the old instance made). */
export function onRestart(hook) {
  restartHooks.push(hook);
}

/** Drops the current Wasm instance for a fresh one; `why` is logged. */
export function restartEngine(why) {
  engine.generation += 1;
  console.error(`hearth: ${why}; the engine was restarted with a fresh instance (restart ${engine.generation})`);
  wasm.__wbg_reset_state();
  for (const hook of restartHooks) hook();
}

/** True for what a Wasm trap or a stack overflow inside the module throws. */
export function isTrap(thrown) {
  return thrown instanceof WebAssembly.RuntimeError || (thrown instanceof RangeError && /call stack/i.test(thrown.message));
}

export function call(fn) {
  try {
    return fn();
  } catch (thrown) {
    if (isTrap(thrown)) {
      restartEngine(`the Wasm module failed (${thrown.message})`);
      const diagnostics = `the engine failed and was restarted; the request was not completed, and nothing of it was stored (${thrown.message})`;
      throw new FhirError(diagnostics, { status: 500, outcome: errorOutcome("exception", diagnostics), cause: thrown });
    }
    throw toFhirError(thrown);
  }
}

