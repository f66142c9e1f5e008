// Types of the hearth-fhir package (every entry point exports the same API).

import type { OperationOutcome } from "./src/generated/r4.js";

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

/** The version of the engine inside the Wasm module. */
export function version(): string;
