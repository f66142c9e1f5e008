// The demo page: reads the pasted resource with hearth-fhir and shows what it found.
import { inspect, format, evaluate, version, FhirError } from "hearth-fhir";

const EXAMPLE = {
  resourceType: "Patient",
  id: "example",
  active: true,
  name: [{ use: "official", family: "Chalmers", given: ["Peter", "James"] }],
  gender: "male",
  birthDate: "1974-12-25",
};

const input = document.querySelector("#resource-input");
const button = document.querySelector("#inspect-button");
const result = document.querySelector("#result");
const canonical = document.querySelector("#canonical");
const canonicalBox = document.querySelector("#canonical-box");

function position(issue) {
  const find = (suffix) => issue.extension?.find((ext) => ext.url.endsWith(suffix))?.valueInteger;
  const line = find("operationoutcome-issue-line");
  return line === undefined ? "" : `line ${line}, column ${find("operationoutcome-issue-col")}: `;
}

function show(kind, lines) {
  result.className = kind;
  result.replaceChildren(
    ...lines.map((text) => {
      const line = document.createElement("div");
      line.textContent = text;
      return line;
    }),
  );
}

function run() {
  try {
    const summary = inspect(input.value);
    const id = summary.id === undefined ? "(no id)" : summary.id;
    show("ok", [`resourceType: ${summary.resourceType}`, `id: ${id}`]);
    canonical.textContent = format(input.value);
    canonicalBox.hidden = false;
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    canonicalBox.hidden = true;
    show(
      "error",
      err.outcome.issue.map((issue) => `${issue.severity}: ${position(issue)}${issue.diagnostics}`),
    );
  }
}

const fhirpathInput = document.querySelector("#fhirpath-input");
const fhirpathResult = document.querySelector("#fhirpath-result");

function runFhirPath() {
  try {
    fhirpathResult.className = "ok";
    fhirpathResult.textContent = JSON.stringify(evaluate(input.value, fhirpathInput.value));
  } catch (err) {
    if (!(err instanceof FhirError)) throw err;
    fhirpathResult.className = "error";
    fhirpathResult.textContent = err.outcome.issue.map((issue) => issue.diagnostics).join("; ");
  }
}

document.querySelector("#fhirpath-button").addEventListener("click", runFhirPath);
fhirpathInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter") runFhirPath();
});

document.querySelector("#example-button").addEventListener("click", () => {
  input.value = JSON.stringify(EXAMPLE, null, 2);
  run();
});
button.addEventListener("click", run);
button.disabled = false;
document.querySelector("#engine-version").textContent = `hearth engine ${version()}`;
document.body.dataset.ready = "true";
