// Hostile requests, each with the answer a FHIR service must give: the test layer replays them
// against `hearth serve` and the in-process service, and the long run fires a seeded mix.
// Each request is { name, method, path (raw, after /fhir), headers, body, status }.

const json = { "Content-Type": "application/fhir+json" };

const repeat = (n, make) => Array.from({ length: n }, (_, idx) => make(idx));

const transaction = JSON.stringify({
  resourceType: "Bundle",
  type: "transaction",
  entry: [
    { resource: { resourceType: "Patient", name: [{ family: "Intruder" }] }, request: { method: "POST", url: "Patient" } },
    { request: { method: "DELETE", url: "Patient/victim" } },
  ],
});

/** The findings, one request each (the batch of large searches is its own case). */
export function hostileRequests() {
  return [
    {
      name: "40,000 repeated parameters",
      method: "GET",
      path: `Patient?${repeat(40_000, () => "name=a").join("&")}`,
      status: 413,
      diagnostics: /maxParameters/,
    },
    {
      name: "a _search form of 10,000 parameters",
      method: "POST",
      path: "Patient/_search",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: repeat(10_000, (idx) => `name=n${idx}`).join("&"),
      status: 413,
      diagnostics: /maxParameters/,
    },
    {
      name: "_sort with 500 keys",
      method: "GET",
      path: `Observation?_sort=${repeat(500, (idx) => (idx % 2 ? "-date" : "code")).join(",")}`,
      status: 413,
      diagnostics: /maxSortKeys/,
    },
    {
      name: "_elements with 10,000 names",
      method: "GET",
      path: `Observation?_elements=${repeat(10_000, (idx) => `e${idx}`).join(",")}`,
      status: 413,
      diagnostics: /maxElements/,
    },
    {
      name: "5,000 ids in one parameter",
      method: "GET",
      path: `Observation?_id=${repeat(5000, (idx) => `id${idx}`).join(",")}`,
      status: 413,
      diagnostics: /maxValues/,
    },
    { name: "a transaction as text/plain", method: "POST", path: "", headers: { "Content-Type": "text/plain" }, body: transaction, status: 415 },
    {
      name: "a transaction as a form",
      method: "POST",
      path: "",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: transaction,
      status: 415,
    },
    { name: "a transaction with no Content-Type", method: "POST", path: "", headers: {}, body: transaction, status: 415 },
    {
      name: "a create from another origin",
      method: "POST",
      path: "Patient",
      headers: { ...json, Origin: "http://evil.example" },
      body: JSON.stringify({ resourceType: "Patient" }),
      status: 403,
    },
    { name: "a delete from another origin", method: "DELETE", path: "Patient/victim", headers: { Origin: "http://evil.example" }, status: 403 },
    { name: "another Host (DNS rebinding)", method: "GET", path: "Patient", headers: { Host: "attacker.example" }, status: 421 },
    {
      name: "an escaped NUL in a string",
      method: "POST",
      path: "Patient",
      headers: json,
      body: '{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}',
      status: 400,
      diagnostics: /control character/,
    },
    {
      name: "an escaped U+0001 in a string",
      method: "POST",
      path: "Patient",
      headers: json,
      body: '{"resourceType":"Patient","name":[{"family":"a\\u0001b"}]}',
      status: 400,
    },
    {
      name: "a transaction reference to no entry",
      method: "POST",
      path: "",
      headers: json,
      body: JSON.stringify({
        resourceType: "Bundle",
        type: "transaction",
        entry: [
          {
            resource: { resourceType: "Observation", status: "final", code: { text: "x" }, subject: { reference: "urn:uuid:9b1d3c52-5d3e-4a4f-9d1e-0c6c0f6f0a11" } },
            request: { method: "POST", url: "Observation" },
          },
        ],
      }),
      status: 400,
      diagnostics: /names no entry/,
    },
    { name: "an encoded dot-dot segment", method: "GET", path: "Patient/%2e%2e", status: 400 },
    { name: "a dot-dot path to another type", method: "GET", path: "Patient/../Observation/x", status: 400 },
    {
      name: "a 10,001-entry batch",
      method: "POST",
      path: "",
      headers: json,
      body: JSON.stringify({ resourceType: "Bundle", type: "batch", entry: repeat(10_001, () => ({ request: { method: "GET", url: "metadata" } })) }),
      status: 413,
      diagnostics: /maxEntries/,
    },
  ];
}

/** The 61 KB batch: 1,000 searches of up to 1,000 Observations each. */
export function largeSearchBatch() {
  return {
    name: "a batch of 1,000 searches of 1,000 Observations",
    method: "POST",
    path: "",
    headers: json,
    body: JSON.stringify({ resourceType: "Bundle", type: "batch", entry: repeat(1000, () => ({ request: { method: "GET", url: "Observation?_count=1000" } })) }),
  };
}

/** The status and body of `request` sent to `hearth serve` at `port` with the raw path. */
export async function sendRaw(port, { method, path, headers = {}, body }) {
  const { request } = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path: `/fhir/${path}`, headers: body === undefined ? headers : { ...headers, "Content-Length": Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The same request to an in-process `FhirService`, as `hearth serve` would hand it over. */
export function sendToService(service, { method, path, headers = {}, body }) {
  const cut = path.indexOf("?");
  const rawPath = cut < 0 ? path : path.slice(0, cut);
  const search = cut < 0 ? "" : path.slice(cut + 1);
  const query = search
    .split("&")
    .filter((pair) => pair !== "")
    .map((pair) => pair.split("=").map((part) => decodeURIComponent(part)));
  const lower = Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]);
  return service.handle({
    method,
    path: rawPath.split("/").map((segment) => decodeURIComponent(segment)).join("/"),
    query,
    headers: lower,
    body: body === undefined ? new Uint8Array() : body,
  });
}

/** Resident memory of a process, in bytes (Linux). */
export async function rssBytes(pid) {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return Number(kb) * 1024;
}
