// The `hearth` command line, run as a child process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { NPM_DIR, FIXTURES, artifactPath } from "../lib/paths.js";

function hearth(...args) {
  const run = spawnSync(process.execPath, [`${NPM_DIR}/bin/hearth.js`, ...args], { encoding: "utf8" });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

test("hearth inspect prints type and id of a readable file", () => {
  const { code, stdout, stderr } = hearth("inspect", `${FIXTURES}/patient.json`);
  assert.equal(stderr, "");
  assert.equal(stdout, `${FIXTURES}/patient.json: Patient/example\n`);
  assert.equal(code, 0);
});

test("hearth inspect reports file, line and column of a broken file and exits 1", () => {
  const { code, stdout, stderr } = hearth("inspect", `${FIXTURES}/patient.json`, `${FIXTURES}/truncated.json`);
  assert.equal(stdout, `${FIXTURES}/patient.json: Patient/example\n`);
  assert.equal(stderr, `${FIXTURES}/truncated.json:4:1: error: expected a string key, found the end of the input\n`);
  assert.equal(code, 1);
});

test("hearth inspect reports a missing file and exits 1", () => {
  const { code, stderr } = hearth("inspect", `${FIXTURES}/does-not-exist.json`);
  assert.match(stderr, /does-not-exist\.json: error: cannot read the file: ENOENT/);
  assert.equal(code, 1);
});

test("hearth inspect prints every problem of a file with its element path", () => {
  const { code, stderr } = hearth("inspect", `${FIXTURES}/patient-bad-elements.json`);
  assert.equal(
    stderr,
    `${FIXTURES}/patient-bad-elements.json:3:3: error: unknown element "nickname" (Patient.nickname)\n` +
      `${FIXTURES}/patient-bad-elements.json:4:13: error: expected "active" (boolean) to be true or false, found a string "yes" (Patient.active)\n`,
  );
  assert.equal(code, 1);
});

test("hearth format prints the canonical form", () => {
  const { code, stdout } = hearth("format", "--compact", `${FIXTURES}/patient.json`);
  assert.equal(
    stdout,
    '{"resourceType":"Patient","id":"example","name":[{"use":"official","family":"Chalmers","given":["Peter","James"]}],"birthDate":"1974-12-25"}\n',
  );
  assert.equal(code, 0);
});

test("hearth format --out writes each file under its own name and reports the broken ones", () => {
  const out = mkdtempSync(artifactPath("format-"));
  const { code, stderr } = hearth("format", "--out", out, `${FIXTURES}/patient.json`, `${FIXTURES}/truncated.json`);
  assert.deepEqual(readdirSync(out), ["patient.json"]);
  assert.equal(JSON.parse(readFileSync(`${out}/patient.json`, "utf8")).id, "example");
  assert.match(stderr, /truncated\.json:4:1: error/);
  assert.equal(code, 1);
});

test("hearth with no or an unknown command prints usage and exits 2", () => {
  for (const args of [[], ["frobnicate"], ["inspect"], ["format"], ["format", "a.json", "b.json"], ["format", "--out"]]) {
    const { code, stderr } = hearth(...args);
    assert.match(stderr, /usage: hearth <command>/);
    assert.equal(code, 2);
  }
});

test("hearth version prints the engine version", () => {
  const { code, stdout } = hearth("version");
  assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  assert.equal(code, 0);
});

test("hearth fhirpath prints the result as JSON", () => {
  const { code, stdout } = hearth("fhirpath", "Patient.name.given", `${FIXTURES}/patient.json`);
  assert.equal(stdout, '["Peter","James"]\n');
  assert.equal(code, 0);
  const broken = hearth("fhirpath", "Patient.name.(", `${FIXTURES}/patient.json`);
  assert.match(broken.stderr, /expected a name after '\.', found '\(' at offset 13/);
  assert.equal(broken.code, 1);
});

test("each command prints its own usage for --help, and --version the version", () => {
  for (const command of ["inspect", "format", "validate", "fhirpath", "import", "serve"]) {
    for (const flag of ["--help", "-h"]) {
      const { code, stdout, stderr } = hearth(command, flag);
      assert.equal(code, 0, `${command} ${flag}: ${stderr}`);
      assert.match(stdout, new RegExp(`^usage: hearth ${command} `), `${command} ${flag}`);
      assert.equal(stderr, "");
    }
  }
  const { code, stdout } = hearth("--version");
  assert.equal(code, 0);
  assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
});

test("hearth fhirpath checks the expression against the resource's type", () => {
  const misspelt = hearth("fhirpath", "Patient.nam", `${FIXTURES}/patient.json`);
  assert.equal(misspelt.code, 1);
  assert.equal(misspelt.stdout, "");
  assert.match(misspelt.stderr, /patient\.json: error: .*unknown element "nam".*Patient/);
  const unchecked = hearth("fhirpath", "--no-check", "Patient.nam", `${FIXTURES}/patient.json`);
  assert.equal(unchecked.code, 0, unchecked.stderr);
  assert.equal(unchecked.stdout, "[]\n");
  const right = hearth("fhirpath", "Patient.id", `${FIXTURES}/patient.json`);
  assert.equal(right.stdout, '["example"]\n');
});

test("hearth validate reports reading errors and goes on with the rest of the resource", () => {
  const dir = mkdtempSync(artifactPath("validate-partial-"));
  const file = `${dir}/patient.json`;
  writeFileSync(file, '{"resourceType":"Patient",\n"nickname":"Pete",\n"birthDate":"2020-13-01",\n"gender":"robot"}\n');
  const { code, stdout } = hearth("validate", file);
  assert.equal(code, 1);
  assert.match(stdout, /patient\.json:2:1: error: unknown element "nickname"/);
  assert.match(stdout, /patient\.json:3:1: error: .*2020-13-01/);
  assert.match(stdout, /patient\.json:4:1: error: the value is not in the required value set .*administrative-gender \(Patient\.gender\)/);
});

test("hearth fhirpath over resources of several types follows FHIRPath: another type gives []", () => {
  const dir = mkdtempSync(artifactPath("fhirpath-types-"));
  writeFileSync(`${dir}/obs.json`, '{"resourceType":"Observation","status":"final","code":{"text":"x"}}');
  const mixed = hearth("fhirpath", "Patient.id", `${FIXTURES}/patient.json`, `${dir}/obs.json`);
  assert.equal(mixed.code, 0, mixed.stderr);
  assert.equal(mixed.stdout, `${FIXTURES}/patient.json: ["example"]\n${dir}/obs.json: []\n`);
  const misspelt = hearth("fhirpath", "Patient.nam", `${dir}/obs.json`);
  assert.equal(misspelt.code, 1);
  assert.match(misspelt.stderr, /unknown element "nam" of Patient/);
  // Options come first: after them, `--help` and `--no-check` are an expression or a file.
  assert.equal(hearth("fhirpath", "--", "--no-check", `${FIXTURES}/patient.json`).code, 1);
  const help = hearth("inspect", `${FIXTURES}/patient.json`, "--help");
  assert.match(help.stderr, /--help: error: cannot read the file/);
  assert.equal(hearth("constructor", "--help").code, 2);
});
