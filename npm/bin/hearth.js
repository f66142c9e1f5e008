#!/usr/bin/env node
// The `hearth` command line: FHIR tools over the same engine as the JS API.
import { readFile } from "node:fs/promises";
import { inspect, version, FhirError } from "../src/entry-node.js";

const USAGE = `usage: hearth <command> [arguments]

commands:
  inspect FILE...   read each FHIR JSON file and print its resourceType and id,
                    or where and why it cannot be read (exit code 1)
  version           print the engine version
  help              print this text`;

/** Line and column of an issue, from the OperationOutcome extensions. */
function position(issue) {
  const find = (suffix) => issue.extension?.find((ext) => ext.url.endsWith(suffix))?.valueInteger;
  const line = find("operationoutcome-issue-line");
  const column = find("operationoutcome-issue-col");
  return line === undefined ? "" : `${line}:${column}:`;
}

async function inspectFiles(files) {
  if (files.length === 0) {
    console.error("hearth inspect: expected at least one FILE\n\n" + USAGE);
    return 2;
  }
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
      const summary = inspect(bytes);
      console.log(`${file}: ${summary.resourceType}${summary.id === undefined ? "" : "/" + summary.id}`);
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      failures += 1;
      for (const issue of err.outcome.issue) {
        const where = issue.expression ? ` (${issue.expression.join(", ")})` : "";
        console.error(`${file}:${position(issue)} ${issue.severity}: ${issue.diagnostics}${where}`);
      }
    }
  }
  return failures === 0 ? 0 : 1;
}

async function main(args) {
  const [command, ...rest] = args;
  switch (command) {
    case "inspect":
      return inspectFiles(rest);
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
      console.error(command === undefined ? USAGE : `hearth: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
