#!/usr/bin/env node
// The `hearth` command line: FHIR tools over the same engine as the JS API.
import { readFile, writeFile, mkdir, readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { createServer } from "node:http";
import { inspect, format, compile, validate, version, FhirError, FhirProfiles, FhirService } from "../src/entry-node.js";
import { openSqliteStore } from "../src/sqlite-store.js";

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
  fhirpath EXPRESSION FILE...          evaluate a FHIRPath expression on each file's resource and
                                       print the result as a JSON array (one line per file)
  import --data DIR FILE|DIR...        store resources in DIR (the store of serve): transaction and
                                       batch Bundles as they are, other Bundles and single
                                       resources (.json) and NDJSON lines (.ndjson) each as a
                                       create or update; prints progress and what failed
  serve [--port N] [--host H] [--data DIR]
                                       serve the FHIR REST API at http://H:N/fhir (default
                                       127.0.0.1:8080), storing in DIR (SQLite) or in memory
  version                              print the engine version
  help                                 print this text

Problems are printed as FILE:LINE:COLUMN: error: MESSAGE (ELEMENT PATH); the exit code is 1
when any file has one, 2 for a usage error.`;

class UsageError extends Error {}

/** Line and column of an issue, from the OperationOutcome extensions. */
function position(issue) {
  const find = (suffix) => issue.extension?.find((ext) => ext.url.endsWith(suffix))?.valueInteger;
  const line = find("operationoutcome-issue-line");
  return line === undefined ? "" : `${line}:${find("operationoutcome-issue-col")}:`;
}

function report(file, err) {
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
  const [expression, ...files] = args;
  if (expression === undefined || files.length === 0) {
    throw new UsageError("hearth fhirpath: expected an EXPRESSION and at least one FILE");
  }
  let compiled;
  try {
    compiled = compile(expression);
  } catch (err) {
    report("<expression>", err);
    return 1;
  }
  return eachFile(files, (file, bytes) => {
    const result = JSON.stringify(compiled.evaluate(bytes));
    console.log(files.length === 1 ? result : `${file}: ${result}`);
  });
}

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

/** `hearth serve`: the FHIR REST API over HTTP, until the process is stopped. */
async function serveCommand(args) {
  const options = { port: "8080", host: "127.0.0.1", data: undefined };
  for (let idx = 0; idx < args.length; idx += 2) {
    const name = args[idx]?.replace(/^--/, "");
    if (!["port", "host", "data"].includes(name) || args[idx + 1] === undefined) {
      throw new UsageError(`hearth serve: unexpected argument "${args[idx]}"`);
    }
    options[name] = args[idx + 1];
  }
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`hearth serve: "${options.port}" is not a port`);
  let store;
  try {
    store = options.data === undefined ? undefined : await openSqliteStore(options.data);
  } catch (err) {
    console.error(`hearth serve: ${err.message}`);
    return 1;
  }
  let service;
  const outcome = (status, code, diagnostics) => ({
    status,
    headers: [["Content-Type", "application/fhir+json; charset=utf-8"]],
    body: JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] }),
  });
  const MAX_BODY = 64 * 1024 * 1024;
  // The query, strictly decoded: a malformed %-escape is an error, not a replacement character.
  const queryPairs = (search) =>
    search
      .replace(/^\?/, "")
      .split("&")
      .filter((pair) => pair !== "")
      .map((pair) => {
        const at = pair.indexOf("=");
        const [name, value] = at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)];
        return [decodeURIComponent(name.replace(/\+/g, " ")), decodeURIComponent(value.replace(/\+/g, " "))];
      });
  // Search URLs can be long (a list of ids, a chain): 1 MiB of request line and headers.
  const server = createServer({ maxHeaderSize: 1 << 20 }, (req, res) => {
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      let answer;
      try {
        if (tooLarge) {
          answer = outcome(413, "too-long", `the body is over ${MAX_BODY} bytes`);
        } else {
          const url = new URL(req.url ?? "/", "http://localhost");
          if (url.pathname !== "/fhir" && !url.pathname.startsWith("/fhir/")) {
            answer = outcome(404, "not-found", `the FHIR API is at /fhir, not ${url.pathname}`);
          } else {
            // Each segment decoded on its own, so that %2F stays inside its segment.
            const segments = url.pathname.replace(/^\/fhir\/?/, "").split("/").map((segment) => decodeURIComponent(segment));
            if (segments.some((segment) => segment.includes("/"))) {
              answer = outcome(400, "invalid", "a path segment cannot contain '/'");
            } else {
              const headers = Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(", ") : String(value)]);
              answer = service.handle({ method: req.method ?? "GET", path: segments.join("/"), query: queryPairs(url.search), headers, body: new Uint8Array(Buffer.concat(chunks)) });
            }
          }
        }
      } catch (err) {
        // A request that cannot even be read (a bad URL or escape) gets an answer, and the
        // server goes on.
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
  service = new FhirService({ baseUrl: base, store });
  console.log(`hearth: FHIR R4 API at ${base} (${options.data === undefined ? "in memory" : `stored in ${options.data}`})`);
  const stop = () => {
    server.close();
    store?.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return new Promise(() => {});
}

async function main(args) {
  const [command, ...rest] = args;
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
