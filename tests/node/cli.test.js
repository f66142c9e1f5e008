// The `hearth` command line, run as a child process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { NPM_DIR, FIXTURES } from "../lib/paths.js";

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

test("hearth with no or an unknown command prints usage and exits 2", () => {
  for (const args of [[], ["frobnicate"], ["inspect"]]) {
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
