// The documentation stays true: every ```js block of the READMEs and guides is JavaScript (not
// TypeScript), every block with `// =>` results runs in Node and gives them, and every file
// ARCHITECTURE.md names exists.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { ROOT, artifactPath } from "../lib/paths.js";

const DOCS = ["README.md", "npm/README.md", ...readdirSync(`${ROOT}docs`).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)];

/** The ```js blocks of a Markdown file, with the line each starts on. */
function jsBlocks(file) {
  const lines = readFileSync(`${ROOT}${file}`, "utf8").split("\n");
  const blocks = [];
  let current = null;
  for (const [index, line] of lines.entries()) {
    if (current === null && line.trim() === "```js") current = { line: index + 2, code: [] };
    else if (current !== null && line.trim() === "```") {
      blocks.push({ line: current.line, code: current.code.join("\n") });
      current = null;
    } else if (current !== null) current.code.push(line);
  }
  return blocks;
}

/** A block with each `EXPR; // => VALUE` line turned into a check that counts itself. */
function checked(code) {
  let expected = 0;
  const body = code
    .split("\n")
    .map((line) => {
      const match = /^(\s*)(.+?);\s*\/\/ => (.+)$/.exec(line);
      if (!match) {
        // A stated result must be one the test can check.
        if (line.includes("// =>")) throw new Error(`a result that cannot be checked (write "EXPRESSION; // => VALUE"): ${line.trim()}`);
        return line;
      }
      expected += 1;
      return `${match[1]}__check(${match[2]}, ${match[3]}, ${JSON.stringify(match[2])});`;
    })
    .join("\n");
  const lines = body.split("\n");
  const imports = lines.filter((line) => line.startsWith("import "));
  const rest = lines.filter((line) => !line.startsWith("import "));
  const source = [
    'import { deepStrictEqual as __equal } from "node:assert/strict";',
    ...imports,
    "let __checks = 0;",
    "function __check(actual, wanted, what) { __equal(actual, wanted, what); __checks += 1; }",
    ...rest,
    `if (__checks !== ${expected}) throw new Error("only " + __checks + " of ${expected} results were checked");`,
  ].join("\n");
  return { source, expected };
}

for (const file of DOCS) {
  test(`the JavaScript of ${file} is JavaScript, and its stated results hold`, () => {
    const blocks = jsBlocks(file);
    let ran = 0;
    for (const [index, block] of blocks.entries()) {
      const path = artifactPath(`doc-${file.replace(/[/.]/g, "-")}-${index}.mjs`);
      writeFileSync(path, block.code);
      const syntax = spawnSync(process.execPath, ["--check", path], { encoding: "utf8" });
      assert.equal(syntax.status, 0, `${file}:${block.line}: not JavaScript:\n${syntax.stderr}`);
      if (!block.code.includes("// => ")) continue;
      const { source } = checked(block.code);
      writeFileSync(path, source);
      const run = spawnSync(process.execPath, [path], { encoding: "utf8", cwd: ROOT });
      assert.equal(run.status, 0, `${file}:${block.line}: the example does not give what it says:\n${run.stderr}`);
      ran += 1;
    }
    console.log(`docs: ${file}: ${blocks.length} JavaScript blocks, ${ran} run with their results checked`);
  });
}

test("every file and folder ARCHITECTURE.md names exists", () => {
  const text = readFileSync(`${ROOT}ARCHITECTURE.md`, "utf8");
  const named = [...text.matchAll(/`((?:engine|bindings|npm|tests|tools|scripts|demo-app|fuzz|docs)\/[A-Za-z0-9_./{},-]*)`/g)].map((match) => match[1]);
  assert.ok(named.length > 20, `only ${named.length} paths found`);
  const missing = [];
  for (const path of named) {
    // `src/entry-{browser,node,workerd}.js` names three files.
    const braces = /\{([^}]*)\}/.exec(path);
    const paths = braces ? braces[1].split(",").map((part) => path.replace(braces[0], part)) : [path];
    for (const one of paths) {
      if (one.includes("dist/")) continue; // build output
      if (!existsSync(`${ROOT}${one}`)) missing.push(one);
    }
  }
  assert.deepEqual(missing, []);
  // The bindings hold no `fetch`: the host does the fetching.
  const bindings = readdirSync(`${ROOT}bindings/src`).map((name) => readFileSync(`${ROOT}bindings/src/${name}`, "utf8")).join("\n");
  if (!/\bfetch\b/.test(bindings)) assert.doesNotMatch(text, /IndexedDB, fetch|IndexedDB\s+and\s+`fetch`/);
});

test("the demo app's package says what the demo is", () => {
  const demo = JSON.parse(readFileSync(`${ROOT}demo-app/package.json`, "utf8"));
  const main = readFileSync(`${ROOT}demo-app/src/main.js`, "utf8");
  // It calls itself a patient app only once it has a patient's record to show.
  if (!/FhirService|sync|patient record/i.test(main)) assert.doesNotMatch(demo.description, /patient (web )?app/i);
});
