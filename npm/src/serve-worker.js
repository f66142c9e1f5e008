// A worker thread of `hearth serve`: an engine of its own over its own connection to the
// SQLite store, answering the requests the main thread hands it, one at a time.
import { parentPort, workerData } from "node:worker_threads";
import { FhirService, engineMemoryBytes } from "./entry-node.js";
import { openSqliteStore } from "./sqlite-store.js";

const { data, durable, baseUrl, limits, allowedHosts, allowedOrigins, maxMemoryBytes, access, oauth, updateCreate } = workerData;
const store = await openSqliteStore(data, { lock: false, durable });
const service = new FhirService({ baseUrl, store, limits, allowedHosts, allowedOrigins, maxMemoryBytes, access, oauth, updateCreate });

parentPort.on("message", ({ id, request }) => {
  let answer;
  try {
    answer = service.handle(request);
  } catch (err) {
    const diagnostics = `the request failed: ${err.message}`;
    answer = {
      status: 500,
      headers: [["Content-Type", "application/fhir+json; charset=utf-8"]],
      body: JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code: "exception", diagnostics }] }),
    };
  }
  parentPort.postMessage({ id, answer, memory: engineMemoryBytes() });
});
parentPort.postMessage({ ready: true });
