// FhirError: the one error type the package throws, carrying an OperationOutcome.

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
  /**
   * @param {string} message
   * @param {{ status: number, outcome: object, cause?: unknown }} details
   */
  constructor(message, { status, outcome, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "FhirError";
    /** @type {number} */
    this.status = status;
    /** @type {object} */
    this.outcome = outcome;
  }
}

/** An OperationOutcome with one error issue. */
export function errorOutcome(code, diagnostics) {
  return { resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] };
}

/**
 * Turns whatever the Wasm glue threw into a FhirError. The bindings throw an Error named
 * "FhirError" with `status` and `outcome`; a WebAssembly trap would be an engine bug and is
 * reported as a 500.
 */
export function toFhirError(thrown) {
  if (thrown instanceof FhirError) return thrown;
  if (thrown instanceof Error && thrown.name === "FhirError" && thrown.outcome) {
    return new FhirError(thrown.message, { status: thrown.status, outcome: thrown.outcome, cause: thrown });
  }
  if (thrown instanceof Error && /stale object from previous Wasm instance/.test(thrown.message)) {
    const diagnostics = "this object was made before the engine restarted; make it again";
    return new FhirError(diagnostics, { status: 500, outcome: errorOutcome("exception", diagnostics), cause: thrown });
  }
  const detail = thrown instanceof Error ? thrown.message : String(thrown);
  const diagnostics = `the engine failed unexpectedly: ${detail}`;
  return new FhirError(diagnostics, { status: 500, outcome: errorOutcome("exception", diagnostics), cause: thrown });
}
