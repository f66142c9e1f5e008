// Malformed inputs every entry point must answer with a FhirError (never a trap), and the
// diagnostics, line and column the engine reports for each.

const nested = "[".repeat(100_000) + "]".repeat(100_000);

export const MALFORMED = [
  {
    name: "truncated JSON",
    input: '{"resourceType":"Patient","id":"a"',
    diagnostics: "expected ',' or '}' in an object, found the end of the input",
    line: 1,
    column: 35,
  },
  {
    name: "a JSON array",
    input: '[{"resourceType":"Patient"}]',
    diagnostics: "expected a FHIR resource (a JSON object), found an array",
    line: 1,
    column: 1,
  },
  {
    name: "resourceType 5",
    input: '{\n  "resourceType": 5\n}',
    diagnostics: 'expected "resourceType" to be a string, found a number',
    line: 2,
    column: 19,
  },
  {
    name: "100k nested arrays",
    input: nested,
    diagnostics: "expected at most 100 levels of nested arrays and objects, found more",
    line: 1,
    column: 101,
  },
  {
    name: "no resourceType",
    input: '{"id":"a"}',
    diagnostics: 'expected a "resourceType" element, found none',
    line: 1,
    column: 1,
  },
];

/** Line and column of an OperationOutcome issue, from its extensions. */
export function issuePosition(issue) {
  const find = (suffix) => issue.extension?.find((ext) => ext.url.endsWith(suffix))?.valueInteger;
  return { line: find("operationoutcome-issue-line"), column: find("operationoutcome-issue-col") };
}
