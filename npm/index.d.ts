// Types of the hearth-fhir package (every entry point exports the same API).

/** A FHIR R4 `OperationOutcome.issue`. */
export interface OperationOutcomeIssue {
  /** Line and column of the issue in the submitted text, as the extensions
   * `http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line` and `-col`. */
  extension?: Array<{ url: string; valueInteger: number }>;
  severity: "fatal" | "error" | "warning" | "information";
  code: string;
  diagnostics?: string;
  /** FHIRPath locations of the elements concerned, e.g. `Patient.name[0].given[1]`. */
  expression?: string[];
}

/** A FHIR R4 `OperationOutcome`. */
export interface OperationOutcome {
  resourceType: "OperationOutcome";
  issue: OperationOutcomeIssue[];
}

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
 * Reads the head of a FHIR resource: checks the input is a JSON object with a string
 * `resourceType` and returns `{ resourceType, id }`.
 *
 * @throws {FhirError} status 400, with the line and column of the problem.
 * @example
 * inspect('{"resourceType":"Patient","id":"example"}'); // { resourceType: "Patient", id: "example" }
 */
export function inspect(input: FhirInput): ResourceSummary;

/** The version of the engine inside the Wasm module. */
export function version(): string;
