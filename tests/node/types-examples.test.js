// The generated TypeScript types describe real resources: every official R4 example, written as
// an object literal of its resource type, type-checks (object literals get excess-property
// checks, so an element the types lack is an error too).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { ROOT, artifactPath } from "../lib/paths.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;

// Examples that break the R4 cardinalities, which the types enforce (required elements are
// required properties). Each must fail, and only for this reason.
const ERRATA = {
  "Questionnaire-qs1.json": "Property 'linkId' is missing", // Questionnaire.item.linkId is 1..1; 32 display items lack it
  ...Object.fromEntries(
    ["codesystem-extensions-CodeSystem", "valueset-extensions-ValueSet"].flatMap((prefix) =>
      ["author", "effective", "end", "keyword", "workflow"].map((name) => [
        `SearchParameter-${prefix}-${name}.json`,
        "Property 'base' is missing", // SearchParameter.base is 1..*
      ]),
    ),
  ),
};

test("every R4 example type-checks against the generated resource types", () => {
  const dir = `${corpus}/examples`;
  const files = readdirSync(dir).filter((name) => name.endsWith(".json")).sort();
  assert.equal(files.length, 825);
  const lines = ['import type { ResourceTypeMap } from "hearth-fhir";'];
  files.forEach((name, idx) => {
    const text = readFileSync(`${dir}/${name}`, "utf8");
    const { resourceType } = JSON.parse(text);
    lines.push(`// ${name}\nexport const example${idx}: ResourceTypeMap[${JSON.stringify(resourceType)}] = ${text.trim()};`);
  });
  const out = mkdtempSync(artifactPath("types-examples-"));
  writeFileSync(`${out}/examples.ts`, lines.join("\n"));
  const run = spawnSync(
    `${ROOT}node_modules/.bin/tsc`,
    ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", `${out}/examples.ts`],
    { encoding: "utf8", cwd: ROOT, maxBuffer: 64 << 20 },
  );
  const errors = (run.stdout + run.stderr).split("\n").filter((line) => line.includes("error TS"));
  // Each example sits on one line after its "// name" comment: map errors back to files.
  const source = lines.join("\n").split("\n");
  const byFile = new Map();
  for (const error of errors) {
    const line = Number(/examples\.ts\((\d+),/.exec(error)?.[1]);
    const name = source[line - 2]?.replace(/^\/\/ /, "") ?? "unknown";
    byFile.set(name, [...(byFile.get(name) ?? []), error]);
  }
  const unexpected = [];
  for (const [name, fileErrors] of byFile) {
    const reason = ERRATA[name];
    for (const error of fileErrors) if (!reason || !error.includes(reason)) unexpected.push(`${name}: ${error}`);
  }
  const missing = Object.keys(ERRATA).filter((name) => !byFile.has(name));
  console.log(
    `types: ${files.length} examples type-checked, ${files.length - byFile.size} clean, ` +
      `${byFile.size} known errata (${errors.length} errors), ${unexpected.length} unexpected`,
  );
  assert.deepEqual(unexpected.slice(0, 20), []);
  assert.deepEqual(missing, [], "errata that no longer fail");
});
