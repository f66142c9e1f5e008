#!/usr/bin/env node
// The `hearth` command line: FHIR tools over the same engine as the JS API.
import { readFile, writeFile, mkdir, readdir, stat } from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createServer } from "node:http";
import { Worker } from "node:worker_threads";
import { inspect, format, compile, validate, version, FhirError, FhirProfiles, FhirService } from "../src/entry-node.js";
import { openSqliteStore } from "../src/sqlite-store.js";
import { TokenVerifier } from "../src/auth.js";

const USAGE = `usage: hearth <command> [arguments]

commands:
  inspect FILE...                      read each FHIR JSON file by the R4 JSON rules and print
                                       its resourceType and id, or every problem found
  format [--compact] FILE              print the file's resource in canonical FHIR JSON
  format [--compact] --out DIR FILE... write each file's canonical form to DIR/<file name>
  validate [--profile URL] [--ig DIR] FILE|DIR...
                                       validate each file (each .json file of a DIR) against the
                                       R4 base specification, the profiles of the IG folders
                                       (StructureDefinitions and ValueSets) it claims, and the
                                       --profile asked for; print its issues; exit code 1 when
                                       any file has an error
  fhirpath [--no-check] EXPRESSION FILE...
                                       evaluate a FHIRPath expression on each file's resource and
                                       print the result as a JSON array (one line per file),
                                       after checking it against the R4 model for the type
  import --data DIR FILE|DIR...        store resources in DIR (the store of serve): transaction and
                                       batch Bundles as they are, other Bundles and single
                                       resources (.json) and NDJSON lines (.ndjson) each as a
                                       create or update; prints progress and what failed
  serve [--port N] [--host H] [--data DIR] [options]
                                       serve the FHIR REST API at http://H:N/fhir (default
                                       127.0.0.1:8080), storing in DIR (SQLite) or in a
                                       scratch store; see hearth serve --help
  version, --version                   print the engine version
  help, --help                         print this text; COMMAND --help prints its own

Problems are printed as FILE:LINE:COLUMN: error: MESSAGE (ELEMENT PATH); the exit code is 1
when any file has one, 2 for a usage error.`;

const SERVE_USAGE = `usage: hearth serve [--port N] [--host H] [--data DIR] [options]

Serves the FHIR R4 REST API at http://H:N/fhir (default 127.0.0.1:8080), storing in DIR
(SQLite, durable) or, without --data, in a scratch store deleted when the server stops.
Reads run on several threads beside the one writer, so a long request does not hold up others.

options:
  --allow-host NAME       also answer requests whose Host header is NAME (or NAME:PORT);
                          "*" answers any (only behind a proxy that checks it)
  --allow-origin ORIGIN   let web pages of ORIGIN (https://app.example) call the API; "*": any
  --limit NAME=N          a per-request limit: maxBodyBytes, maxParameters, maxValues,
                          maxSortKeys, maxElements, maxEntries, maxResponseBytes, maxWork
  --readers N             reader threads (default: 2 to 4, by the cores)
  --timeout SECONDS       a read taking longer is stopped and answered 503 (default 30; 0: never)
  --no-update-create      assign every new resource's id here: a PUT to an id that never
                          existed answers 405 (updateCreate: false), as many servers do

authorization (SMART on FHIR):
  --issuer URL            answer only requests with an access token (a JWT, RS256 or ES256)
                          from this authorization server, found through its
                          /.well-known/openid-configuration; scopes decide what each request
                          reaches, and every interaction is recorded as an AuditEvent
  --audience URL          the aud tokens must carry (default: this server's FHIR base URL)
  --jwks URL              the issuer's keys, when its configuration does not name them
  --roles FILE            a roles file: what each role (token claim "roles") lets user/
                          scopes reach, e.g. {"roles":{"clinician":{"allow":["*.cruds"],
                          "compartment":"Practitioner"}}}
  --no-auth               serve without authorization on an address other than 127.0.0.1
                          (without --issuer, authorization is off, which is allowed only
                          on the loopback address unless this is given)`;

/** Each command's own usage, for `hearth COMMAND --help`. */
const COMMAND_USAGE = {
  inspect: `usage: hearth inspect FILE...

Reads each FHIR JSON file by the R4 JSON rules and prints FILE: Type/id, or each problem as
FILE:LINE:COLUMN: error: MESSAGE (ELEMENT PATH). Exit code 1 when any file has a problem.`,
  format: `usage: hearth format [--compact] FILE
       hearth format [--compact] --out DIR FILE...

Prints the file's resource in canonical FHIR JSON (elements in the specification's order,
numbers as written), pretty unless --compact; with --out, writes each file's canonical form
to DIR/<file name>.`,
  validate: `usage: hearth validate [--profile URL] [--ig DIR] FILE|DIR...

Validates each file (each .json file of a DIR) against the R4 base specification, the profiles
of the IG folders (StructureDefinitions and ValueSets) it claims, and the --profile asked for.
Prints every issue, reading errors and validation findings alike, as
FILE:LINE:COLUMN: SEVERITY: MESSAGE (ELEMENT PATH). Exit code 1 when any file has an error.`,
  fhirpath: `usage: hearth fhirpath [--no-check] EXPRESSION FILE...

Evaluates a FHIRPath expression on each file's resource and prints the result as a JSON array
(one line per file). The expression is first checked against the R4 model for the resource's
type, so that a misspelt element (Patient.nam) is an error rather than an empty result;
--no-check skips that check.`,
  import: `usage: hearth import --data DIR FILE|DIR...

Stores resources in DIR (the store of hearth serve): transaction and batch Bundles as they are,
other Bundles and single resources (.json) and NDJSON lines (.ndjson) each as a create or
update. Prints progress and what failed; exit code 1 when anything failed.`,
};

class UsageError extends Error {}

/** Line and column of an issue, from the OperationOutcome extensions. */
function position(issue) {
  const find = (suffix) => issue.extension?.find((ext) => ext.url.endsWith(suffix))?.valueInteger;
  const line = find("operationoutcome-issue-line");
  return line === undefined ? "" : `${line}:${find("operationoutcome-issue-col")}:`;
}

function report(file, err) {
  if (err instanceof CheckFailed) return;
  if (!(err instanceof FhirError)) throw err;
  for (const issue of err.outcome.issue) {
    const where = issue.expression ? ` (${issue.expression.join(", ")})` : "";
    console.error(`${file}:${position(issue)} ${issue.severity}: ${issue.diagnostics}${where}`);
  }
}

/** Runs `work(bytes)` on each file; returns the number of files that failed. */
async function eachFile(files, work) {
  let failures = 0;
  for (const file of files) {
    let bytes;
    try {
      bytes = await readFile(file);
    } catch (err) {
      console.error(`${file}: error: cannot read the file: ${err.message}`);
      failures += 1;
      continue;
    }
    try {
      await work(file, bytes);
    } catch (err) {
      report(file, err);
      failures += 1;
    }
  }
  return failures;
}

async function inspectCommand(args) {
  if (args.length === 0) throw new UsageError("hearth inspect: expected at least one FILE");
  return eachFile(args, (file, bytes) => {
    const summary = inspect(bytes);
    console.log(`${file}: ${summary.resourceType}${summary.id === undefined ? "" : "/" + summary.id}`);
  });
}

async function formatCommand(args) {
  let pretty = true;
  let outDir = null;
  const files = [];
  for (let idx = 0; idx < args.length; idx += 1) {
    const arg = args[idx];
    if (arg === "--compact") pretty = false;
    else if (arg === "--out") {
      outDir = args[idx + 1];
      idx += 1;
      if (outDir === undefined) throw new UsageError("hearth format: expected a directory after --out");
    } else if (arg.startsWith("--")) throw new UsageError(`hearth format: unknown option ${arg}`);
    else files.push(arg);
  }
  if (outDir === null && files.length !== 1) {
    throw new UsageError("hearth format: expected one FILE, or --out DIR with several");
  }
  if (files.length === 0) throw new UsageError("hearth format: expected at least one FILE");
  if (outDir !== null) await mkdir(outDir, { recursive: true });
  return eachFile(files, async (file, bytes) => {
    const text = format(bytes, { pretty }) + "\n";
    if (outDir === null) process.stdout.write(text);
    else await writeFile(join(outDir, basename(file)), text);
  });
}

/** The .json files of the arguments: files as given, folders by their (sorted) .json files. */
async function jsonFiles(paths) {
  const res = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch {
      res.push(path); // reported when read
      continue;
    }
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((name) => name.endsWith(".json")).sort();
      res.push(...names.map((name) => join(path, name)));
    } else {
      res.push(path);
    }
  }
  return res;
}

async function validateCommand(args) {
  const files = [];
  const igs = [];
  let profile;
  for (let idx = 0; idx < args.length; idx += 1) {
    const arg = args[idx];
    if (arg === "--profile" || arg === "--ig") {
      const value = args[idx + 1];
      if (value === undefined) throw new UsageError(`hearth validate: expected a value after ${arg}`);
      if (arg === "--profile") profile = value;
      else igs.push(value);
      idx += 1;
    } else {
      files.push(arg);
    }
  }
  if (files.length === 0) throw new UsageError("hearth validate: expected at least one FILE or DIR");
  let profiles;
  if (igs.length > 0 || profile !== undefined) {
    profiles = new FhirProfiles();
    // Every resource of the IG folders that is a StructureDefinition, a ValueSet or a Bundle
    // of them is loaded; other files there are not definitions and are passed over.
    for (const file of await jsonFiles(igs)) {
      try {
        profiles.add(await readFile(file));
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
      }
    }
  }
  let withErrors = 0;
  const failures = await eachFile(await jsonFiles(files), (file, bytes) => {
    const outcome = validate(bytes, { profiles, profile });
    const errors = outcome.issue.filter((issue) => issue.severity === "error" || issue.severity === "fatal");
    if (errors.length > 0) withErrors += 1;
    for (const issue of outcome.issue) {
      if (issue.severity === "information" && outcome.issue.length === 1) {
        console.log(`${file}: valid`);
        continue;
      }
      const where = issue.expression ? ` (${issue.expression.join(", ")})` : "";
      console.log(`${file}:${position(issue)} ${issue.severity}: ${issue.diagnostics}${where}`);
    }
  });
  return failures + withErrors;
}

async function fhirpathCommand(args) {
  // Options come first; `--` ends them, so an expression may start with "--".
  let check = true;
  let first = 0;
  for (; first < args.length; first += 1) {
    if (args[first] === "--no-check") check = false;
    else if (args[first] === "--") {
      first += 1;
      break;
    } else break;
  }
  const [expression, ...files] = args.slice(first);
  if (expression === undefined || files.length === 0) {
    throw new UsageError("hearth fhirpath: expected an EXPRESSION and at least one FILE");
  }
  // Compiled once, and once per resource type when checked against the model.
  let unchecked;
  try {
    unchecked = compile(expression);
  } catch (err) {
    report("<expression>", err);
    return 1;
  }
  const byType = new Map();
  return eachFile(files, (file, bytes) => {
    let compiled = unchecked;
    if (check) {
      const { resourceType } = inspect(bytes);
      if (!byType.has(resourceType)) {
        byType.set(resourceType, checkedFor(expression, resourceType, unchecked));
      }
      compiled = byType.get(resourceType);
      if (compiled instanceof Error) {
        for (const issue of compiled.outcome?.issue ?? []) {
          console.error(`${file}: error: ${issue.diagnostics} (checked against the R4 model; --no-check skips this)`);
        }
        throw new CheckFailed();
      }
    }
    const result = JSON.stringify(compiled.evaluate(bytes));
    console.log(files.length === 1 ? result : `${file}: ${result}`);
  });
}

/**
 * The expression compiled with the check against `resourceType`'s model; when it names another
 * type first (`Patient.name` on an Observation, empty by FHIRPath's rules), checked against that
 * type instead. An Error when the check fails.
 */
function checkedFor(expression, resourceType, unchecked) {
  try {
    return compile(expression, { resourceType });
  } catch (err) {
    const named = /^\s*([A-Z][A-Za-z]*)\b/.exec(expression)?.[1];
    if (named === undefined || named === resourceType) return err;
    try {
      compile(expression, { resourceType: named });
      return unchecked; // right for its own type, which this resource is not
    } catch (namedErr) {
      // Wrong for the type it names too: that is the error to report.
      return /names no|not a resource type|unknown (resource )?type/i.test(namedErr.message) ? err : namedErr;
    }
  }
}

/** A file whose check was reported already. */
class CheckFailed extends Error {}

/** A batch entry that stores `resource`: an update when it has an id, a create otherwise. */
function storeEntry(resource) {
  return resource.id
    ? { resource, request: { method: "PUT", url: `${resource.resourceType}/${resource.id}` } }
    : { resource, request: { method: "POST", url: resource.resourceType } };
}

/** `hearth import`: resources into the on-disk store, through the same handler as serve. */
async function importCommand(args) {
  let data;
  const paths = [];
  for (let idx = 0; idx < args.length; idx += 1) {
    if (args[idx] === "--data") {
      data = args[idx + 1];
      idx += 1;
    } else {
      paths.push(args[idx]);
    }
  }
  if (data === undefined || paths.length === 0) throw new UsageError("hearth import: expected --data DIR and at least one FILE or DIR");
  let store;
  try {
    store = await openSqliteStore(data);
  } catch (err) {
    console.error(`hearth import: ${err.message}`);
    return 1;
  }
  const service = new FhirService({ baseUrl: "http://localhost/fhir", store });
  const files = [];
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch {
      files.push(path);
      continue;
    }
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((name) => name.endsWith(".json") || name.endsWith(".ndjson")).sort();
      files.push(...names.map((name) => join(path, name)));
    } else {
      files.push(path);
    }
  }
  let stored = 0;
  let failed = 0;
  const problems = [];
  const progress = (done) => {
    if (!process.stderr.isTTY) return;
    const width = 30;
    const filled = Math.round((done / files.length) * width);
    process.stderr.write(`\r[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${files.length} files, ${stored} resources`);
  };
  /** Posts a Bundle; counts the entries stored and the ones that failed. */
  const post = (file, bundle) => {
    const answer = service.handle({ method: "POST", path: "", body: typeof bundle === "string" ? bundle : JSON.stringify(bundle) });
    if (answer.status !== 200) {
      // A failed transaction stores none of its entries.
      failed += Math.max(1, (typeof bundle === "string" ? JSON.parse(bundle) : bundle).entry?.length ?? 1);
      const outcome = JSON.parse(answer.body);
      problems.push(`${file}: ${answer.status}: ${outcome.issue?.map((issue) => issue.diagnostics).join("; ")}`);
      return;
    }
    for (const entry of JSON.parse(answer.body).entry ?? []) {
      const status = Number.parseInt(entry.response?.status ?? "0", 10);
      if (status >= 200 && status < 300) stored += 1;
      else {
        failed += 1;
        problems.push(`${file}: ${entry.response?.status}: ${entry.response?.outcome?.issue?.map((issue) => issue.diagnostics).join("; ") ?? ""}`);
      }
    }
  };
  let unreadable = 0;
  for (const [index, file] of files.entries()) {
    progress(index);
    let text;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      console.error(`${file}: error: cannot read the file: ${err.message}`);
      unreadable += 1;
      continue;
    }
    try {
      if (file.endsWith(".ndjson")) {
        // Each line on its own: a line that is not JSON is reported, the others are stored.
        const entries = [];
        for (const [lineIndex, line] of text.split("\n").entries()) {
          if (line.trim() === "") continue;
          try {
            entries.push(storeEntry(JSON.parse(line)));
          } catch (err) {
            if (!(err instanceof SyntaxError)) throw err;
            failed += 1;
            problems.push(`${file}:${lineIndex + 1}: not JSON: ${err.message}`);
          }
        }
        for (let start = 0; start < entries.length; start += 500) {
          post(file, { resourceType: "Bundle", type: "batch", entry: entries.slice(start, start + 500) });
        }
        continue;
      }
      const resource = JSON.parse(text);
      if (resource.resourceType === "Bundle" && (resource.type === "transaction" || resource.type === "batch")) {
        post(file, text);
      } else if (resource.resourceType === "Bundle") {
        post(file, { resourceType: "Bundle", type: "batch", entry: (resource.entry ?? []).filter((entry) => entry.resource).map((entry) => storeEntry(entry.resource)) });
      } else {
        post(file, { resourceType: "Bundle", type: "batch", entry: [storeEntry(resource)] });
      }
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      console.error(`${file}: error: not JSON: ${err.message}`);
      unreadable += 1;
    }
  }
  progress(files.length);
  if (process.stderr.isTTY) process.stderr.write("\n");
  store.close();
  // The same failure in many entries is told once, with its count and first file.
  const grouped = new Map();
  for (const problem of problems) {
    const [file, ...rest] = problem.split(": ");
    const message = rest.join(": ");
    const seen = grouped.get(message);
    if (seen) seen.count += 1;
    else grouped.set(message, { count: 1, file });
  }
  for (const [message, { count, file }] of [...grouped].slice(0, 20)) {
    console.error(count === 1 ? `${file}: ${message}` : `${count} entries (first in ${file}): ${message}`);
  }
  if (grouped.size > 20) console.error(`... and ${grouped.size - 20} other failures`);
  console.log(`hearth import: ${files.length} files, ${stored} resources stored in ${data}, ${failed} failed${unreadable ? `, ${unreadable} files unreadable` : ""}`);
  return failed + unreadable;
}

/**
 * Worker threads that answer requests, each with an engine of its own over the store. A
 * request goes to an idle worker, or waits in order for one; a reader that takes longer than
 * `timeoutMs` is stopped and replaced (its request answered 503), and a worker that dies is
 * replaced too, so that no request stalls the others for long.
 */
class WorkerPool {
  constructor(name, size, workerData, timeoutMs) {
    this.name = name;
    this.workerData = workerData;
    this.timeoutMs = timeoutMs;
    this.queue = [];
    this.workers = [];
    this.nextId = 0;
    this.failedStarts = 0;
    for (let idx = 0; idx < size; idx += 1) this.workers.push(this.spawn());
  }

  spawn() {
    const worker = new Worker(new URL("../src/serve-worker.js", import.meta.url), { workerData: this.workerData });
    const slot = { worker, ready: false, job: null };
    slot.readyPromise = new Promise((resolve, reject) => {
      worker.once("error", reject);
      worker.on("message", (message) => {
        if (message.ready) {
          slot.ready = true;
          resolve();
          this.pump();
          return;
        }
        const job = slot.job;
        if (job === null || job.id !== message.id) return;
        clearTimeout(job.timer);
        slot.job = null;
        job.resolve(message.answer);
        this.pump();
      });
    });
    // A thread that fails to start is reported by "error" and replaced on "exit".
    slot.readyPromise.catch(() => {});
    worker.on("error", (err) => console.error(`hearth: a ${this.name} thread failed: ${err.message}`));
    worker.on("exit", () => {
      const index = this.workers.indexOf(slot);
      if (index < 0) return; // replaced on purpose
      if (slot.job) {
        clearTimeout(slot.job.timer);
        slot.job.resolve(outcome(500, "exception", "the thread answering the request stopped; the request may be retried"));
      }
      console.error(`hearth: a ${this.name} thread stopped; starting another`);
      const replacement = () => {
        if (this.workers[index] === slot) this.workers[index] = this.spawn();
      };
      // One that died before it was ready is retried after a pause that doubles, up to 30 s.
      if (slot.ready) {
        this.failedStarts = 0;
        replacement();
      } else {
        this.failedStarts += 1;
        setTimeout(replacement, Math.min(30_000, 500 * 2 ** this.failedStarts));
      }
    });
    return slot;
  }

  ready() {
    return Promise.all(this.workers.map((slot) => slot.readyPromise));
  }

  /** Answers `request` on a worker of the pool; 503 when too many already wait. */
  run(request) {
    if (this.queue.length >= MAX_QUEUED) {
      const busy = outcome(503, "transient", `the server is busy: ${this.queue.length} requests wait for the ${this.name}; retry later`);
      busy.headers.push(["Retry-After", "1"]);
      return Promise.resolve(busy);
    }
    return new Promise((resolve) => {
      this.queue.push({ id: (this.nextId += 1), request, resolve, timer: null });
      this.pump();
    });
  }

  pump() {
    for (const slot of this.workers) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.job !== null) continue;
      const job = this.queue.shift();
      slot.job = job;
      if (this.timeoutMs > 0) {
        job.timer = setTimeout(() => this.expire(slot, job), this.timeoutMs);
      }
      slot.worker.postMessage({ id: job.id, request: job.request });
    }
  }

  /** Stops a worker whose request took too long, and starts another in its place. */
  expire(slot, job) {
    if (slot.job !== job) return;
    const index = this.workers.indexOf(slot);
    this.workers.splice(index, 1);
    slot.job = null;
    slot.worker.terminate();
    console.error(`hearth: a request took longer than ${this.timeoutMs / 1000} s and was stopped: ${job.request.method} /${job.request.path}`);
    job.resolve(outcome(503, "timeout", `the request took longer than the ${this.timeoutMs / 1000} s allowed and was stopped; narrow it`));
    this.workers.push(this.spawn());
  }

  close() {
    for (const slot of this.workers.splice(0)) slot.worker.terminate();
  }
}

/** Requests that may wait for a pool's threads; more are answered 503 at once. */
const MAX_QUEUED = 256;
/** Bytes of request bodies held at once; a request that would pass it is answered 503. */
const MAX_BODIES_HELD = 256 * 1024 * 1024;

/** A response with an OperationOutcome of one error. */
function outcome(status, code, diagnostics) {
  return {
    status,
    headers: [
      ["Content-Type", "application/fhir+json; charset=utf-8"],
      ["X-Content-Type-Options", "nosniff"],
      ["Cache-Control", "no-store"],
    ],
    body: JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] }),
  };
}

/** True for requests that only read: they go to the readers, beside the writer. */
function readsOnly(method, segments) {
  if (method === "GET" || method === "HEAD" || method === "OPTIONS") return true;
  return method === "POST" && segments.at(-1) === "_search";
}

/** `hearth serve`: the FHIR REST API over HTTP, until the process is stopped. */
async function serveCommand(args) {
  const options = { port: "8080", host: "127.0.0.1", data: undefined, readers: String(Math.max(2, Math.min(4, availableParallelism()))), timeout: "30" };
  const allowedHosts = [];
  const allowedOrigins = [];
  const limits = {};
  let noAuth = false;
  let updateCreate = true;
  for (let idx = 0; idx < args.length; idx += 2) {
    const name = args[idx]?.replace(/^--/, "");
    if (name === "help" || args[idx] === "-h") {
      console.log(SERVE_USAGE);
      return 0;
    }
    if (args[idx] === "--no-auth") {
      noAuth = true;
      idx -= 1;
      continue;
    }
    if (args[idx] === "--no-update-create") {
      updateCreate = false;
      idx -= 1;
      continue;
    }
    const value = args[idx + 1];
    if (value === undefined) throw new UsageError(`hearth serve: expected a value after "${args[idx]}"`);
    if (name === "allow-host") allowedHosts.push(value);
    else if (name === "allow-origin") allowedOrigins.push(value);
    else if (name === "limit") {
      const match = /^(\w+)=(\d+)$/.exec(value);
      if (!match) throw new UsageError(`hearth serve: expected --limit NAME=NUMBER, not "${value}"`);
      limits[match[1]] = Number(match[2]);
    } else if (["port", "host", "data", "readers", "timeout", "issuer", "audience", "jwks", "roles"].includes(name)) options[name] = value;
    else throw new UsageError(`hearth serve: unexpected argument "${args[idx]}"`);
  }
  if (options.issuer === undefined && (options.audience !== undefined || options.jwks !== undefined || options.roles !== undefined)) {
    throw new UsageError("hearth serve: --audience, --jwks and --roles need --issuer");
  }
  if (options.issuer !== undefined && noAuth) throw new UsageError("hearth serve: --no-auth and --issuer contradict each other");
  let roles;
  if (options.roles !== undefined) {
    try {
      roles = await readFile(options.roles, "utf8");
      new FhirService({ access: { roles } });
    } catch (err) {
      throw new UsageError(`hearth serve: the roles file ${options.roles}: ${err.message}`);
    }
  }
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`hearth serve: "${options.port}" is not a port`);
  try {
    new FhirService({ limits });
  } catch (err) {
    throw new UsageError(`hearth serve: ${err.message}`);
  }
  const readers = Number(options.readers);
  if (!Number.isInteger(readers) || readers < 1 || readers > 64) throw new UsageError(`hearth serve: "${options.readers}" is not a number of readers (1 to 64)`);
  const timeoutMs = Number(options.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new UsageError(`hearth serve: "${options.timeout}" is not a number of seconds`);
  const loopback = /^(127\.|localhost$|::1$|\[::1\]$)/.test(options.host);
  if (!loopback && options.issuer === undefined) {
    if (!noAuth) {
      throw new UsageError(
        `hearth serve: --host ${options.host} makes the API reachable from other machines; give --issuer URL to require access tokens, or --no-auth to serve every resource to anyone who can reach it`,
      );
    }
    console.error(
      `hearth serve: warning: --host ${options.host} --no-auth makes the API reachable from other machines with no authorization: anyone who can reach it can read and change every resource. ` +
        `Requests are answered only when their Host header is one given with --allow-host.`,
    );
  }
  // The store: the directory given, or a scratch one deleted when the server stops. Without
  // better-sqlite3 the service runs in this thread, in memory.
  let lockStore;
  let scratch;
  let data = options.data;
  try {
    if (data === undefined) {
      scratch = mkdtempSync(join(tmpdir(), "hearth-serve-"));
      data = scratch;
    }
    lockStore = await openSqliteStore(data, { durable: scratch === undefined });
  } catch (err) {
    if (scratch !== undefined) {
      rmSync(scratch, { recursive: true, force: true });
      scratch = undefined;
      console.error(`hearth serve: ${err.message}; serving from memory in one thread instead`);
    } else {
      console.error(`hearth serve: ${err.message}`);
      return 1;
    }
  }
  const MAX_BODY = limits.maxBodyBytes ?? 64 * 1024 * 1024;
  // The query, strictly decoded: a malformed %-escape is an error, not a replacement character.
  const queryPairs = (search) =>
    search
      .split("&")
      .filter((pair) => pair !== "")
      .map((pair) => {
        const at = pair.indexOf("=");
        const [name, value] = at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)];
        return [decodeURIComponent(name.replace(/\+/g, " ")), decodeURIComponent(value.replace(/\+/g, " "))];
      });
  let answerWith;
  let authorize;
  let smartConfiguration;
  // Search URLs can be long (a list of ids, a chain): 1 MiB of request line and headers.
  let bodiesHeld = 0;
  const server = createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    let busy = false;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      else if (bodiesHeld + chunk.length > MAX_BODIES_HELD) busy = true;
      if (tooLarge || busy) return;
      chunks.push(chunk);
      bodiesHeld += chunk.length;
    });
    const release = () => {
      for (const chunk of chunks) bodiesHeld -= chunk.length;
      chunks.length = 0;
    };
    // Held until the answer is sent (or the connection drops).
    res.on("close", release);
    req.on("end", async () => {
      let answer;
      try {
        if (busy && !tooLarge) {
          answer = outcome(503, "transient", "the server holds too many request bodies at once; retry later");
          answer.headers.push(["Retry-After", "1"]);
        } else if (tooLarge) {
          answer = outcome(413, "too-costly", `the body is over ${MAX_BODY} bytes (limit maxBodyBytes)`);
        } else {
          // The path as sent: not normalised, so that "." and ".." reach the engine, which
          // refuses them, instead of turning into another endpoint.
          const target = req.url ?? "/";
          const cut = target.indexOf("?");
          const rawPath = cut < 0 ? target : target.slice(0, cut);
          const search = cut < 0 ? "" : target.slice(cut + 1);
          if (rawPath !== "/fhir" && !rawPath.startsWith("/fhir/")) {
            answer = outcome(404, "not-found", `the FHIR API is at /fhir, not ${rawPath}`);
          } else {
            // Each segment decoded on its own, so that %2F stays inside its segment.
            const segments = rawPath.replace(/^\/fhir\/?/, "").split("/").map((segment) => decodeURIComponent(segment));
            if (segments.some((segment) => segment.includes("/"))) {
              answer = outcome(400, "invalid", "a path segment cannot contain '/'");
            } else {
              const headers = Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : String(value)]);
              const request = { method: req.method ?? "GET", path: segments.join("/"), query: queryPairs(search), headers, body: new Uint8Array(Buffer.concat(chunks)) };
              const method = request.method.toUpperCase();
              if (smartConfiguration !== undefined && method === "GET" && request.path === ".well-known/smart-configuration") {
                answer = { status: 200, headers: [["Content-Type", "application/json"], ["Access-Control-Allow-Origin", "*"], ["Cache-Control", "no-store"]], body: JSON.stringify(await smartConfiguration()) };
              } else {
                // The CapabilityStatement and CORS preflights are public; everything else
                // needs a token when authorization is on.
                const open = method === "OPTIONS" || (method === "GET" && request.path === "metadata");
                if (authorize !== undefined && !open) {
                  const verdict = await authorize(req, request);
                  request.claims = verdict.claims ?? { refused: verdict.refused };
                }
                answer = await answerWith(request, readsOnly(method, segments));
              }
            }
          }
        }
      } catch (err) {
        // A request that cannot even be read (a bad escape) gets an answer, and the server
        // goes on.
        answer = err instanceof URIError || err instanceof TypeError
          ? outcome(400, "invalid", `the request URL cannot be read: ${err.message}`)
          : outcome(500, "exception", `the request failed: ${err.message}`);
      }
      res.writeHead(answer.status, Object.fromEntries(answer.headers));
      res.end(answer.body);
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, options.host, resolve);
  });
  const address = server.address();
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const base = `http://${host}:${address.port}/fhir`;
  let verifier;
  let oauth;
  if (options.issuer !== undefined) {
    verifier = new TokenVerifier({ issuer: options.issuer, audience: options.audience ?? base, jwks: options.jwks });
    try {
      const config = await verifier.configuration();
      if (typeof config.authorization_endpoint === "string" && typeof config.token_endpoint === "string") {
        oauth = { authorize: config.authorization_endpoint, token: config.token_endpoint };
      }
    } catch (err) {
      console.error(`hearth serve: ${err.message}`);
      server.close();
      return 1;
    }
  }
  authorize = verifier === undefined ? undefined : (req, request) => verifier.authorize((name) => req.headers[name], request.query);
  smartConfiguration = verifier === undefined ? undefined : () => verifier.smartConfiguration();
  const access = { roles, audit: true };
  let pools = [];
  if (lockStore !== undefined) {
    const workerData = { data, durable: scratch === undefined, baseUrl: base, limits, allowedHosts, allowedOrigins, maxMemoryBytes: 256 * 1024 * 1024, access, oauth, updateCreate };
    // The writer first: a store written by an older version is indexed again there.
    const writer = new WorkerPool("writer", 1, workerData, 0);
    await writer.ready();
    await writer.run({ method: "GET", path: "metadata", query: [], headers: [], body: new Uint8Array() });
    const reader = new WorkerPool("reader", readers, workerData, timeoutMs);
    await reader.ready();
    pools = [writer, reader];
    answerWith = (request, read) => (read ? reader : writer).run(request);
  } else {
    const service = new FhirService({ baseUrl: base, limits, allowedHosts, allowedOrigins, access, oauth, updateCreate });
    answerWith = async (request) => service.handle(request);
  }
  const where = options.data !== undefined ? `stored in ${options.data}` : scratch !== undefined ? "in a scratch store, deleted when it stops" : "in memory";
  console.log(`hearth: FHIR R4 API at ${base} (${where})${verifier === undefined ? "" : `, access tokens of ${options.issuer}`}`);
  const stop = () => {
    server.close();
    for (const pool of pools) pool.close();
    lockStore?.close();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return new Promise(() => {});
}

async function main(args) {
  const [command, ...rest] = args;
  // `--help` (or `-h`) right after the command: a file of that name stays readable after it.
  if ((rest[0] === "--help" || rest[0] === "-h") && (Object.hasOwn(COMMAND_USAGE, command) || command === "serve")) {
    console.log(command === "serve" ? SERVE_USAGE : COMMAND_USAGE[command]);
    return 0;
  }
  switch (command) {
    case "inspect":
      return (await inspectCommand(rest)) === 0 ? 0 : 1;
    case "format":
      return (await formatCommand(rest)) === 0 ? 0 : 1;
    case "validate":
      return (await validateCommand(rest)) === 0 ? 0 : 1;
    case "fhirpath":
      return (await fhirpathCommand(rest)) === 0 ? 0 : 1;
    case "serve":
      return serveCommand(rest);
    case "import":
      return (await importCommand(rest)) === 0 ? 0 : 1;
    case "version":
    case "--version":
      console.log(version());
      return 0;
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      throw new UsageError(command === undefined ? "hearth: expected a command" : `hearth: unknown command "${command}"`);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  console.error(`${err.message}\n\n${USAGE}`);
  process.exitCode = 2;
}
