// What an evaluation comes to, as text two evaluations are compared by: its results as JSON
// (-0 told from 0), or `error <status>` for a FhirError; anything else thrown is a failure.
import { evaluate, FhirError } from "hearth-fhir";

/** `value` with every object's properties in name order. */
function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sorted(value[key])]),
  );
}

/**
 * What `run()` comes to.
 * @param {() => unknown[]} run
 * @param {{ detail?: RegExp, sortKeys?: boolean }} [options] `detail`: the part of an error's
 *   message it matches is added; `sortKeys`: objects compared whatever their properties' order.
 */
export function outcome(run, { detail, sortKeys = false } = {}) {
  try {
    const results = run();
    return JSON.stringify(sortKeys ? sorted(results) : results, (_, value) => (Object.is(value, -0) ? "-0" : value));
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    return detail === undefined ? `error ${err.status}` : `error ${err.status} ${detail.exec(err.message)?.[0]}`;
  }
}

/** What `evaluate(input, expression)` comes to (see {@link outcome}). */
export function answer(input, expression, options) {
  return outcome(() => evaluate(input, expression), options);
}
