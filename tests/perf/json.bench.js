// Benchmark: FHIR JSON read + canonical write in Wasm (hearth-fhir `format`), against V8's
// JSON.parse + JSON.stringify of the same bytes, over every Synthea bundle. One Node process.
// Run with `make bench`. Prints throughput and the ratio (higher is better for Hearth).
import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { format } from "hearth-fhir";
import { ROOT } from "../lib/paths.js";

const corpus = process.env.HEARTH_CORPUS ?? `${ROOT}../shared/corpus`;
const dir = `${corpus}/synthea`;
const files = readdirSync(dir).filter((name) => name.endsWith(".json")).sort();
const inputs = files.map((name) => {
  const bytes = readFileSync(`${dir}/${name}`);
  return { bytes: new Uint8Array(bytes), text: bytes.toString("utf8") };
});
const totalBytes = inputs.reduce((sum, input) => sum + input.bytes.length, 0);

/** Runs `fn` over every input `rounds` times; returns MB/s (best of `trials`). */
function measure(fn, rounds = 3, trials = 5) {
  let best = Infinity;
  for (let trial = 0; trial < trials; trial += 1) {
    const start = performance.now();
    for (let round = 0; round < rounds; round += 1) for (const input of inputs) fn(input);
    best = Math.min(best, (performance.now() - start) / rounds);
  }
  return totalBytes / 1e6 / (best / 1000);
}

let sink = 0;
const contenders = {
  "V8 JSON.parse + JSON.stringify (text)": (input) => {
    sink += JSON.stringify(JSON.parse(input.text)).length;
  },
  "Hearth format, compact (bytes in)": (input) => {
    sink += format(input.bytes, { pretty: false }).length;
  },
  "Hearth format, compact (text in)": (input) => {
    sink += format(input.text, { pretty: false }).length;
  },
};

// Warm up every contender once (JIT, Wasm tier-up).
for (const fn of Object.values(contenders)) measure(fn, 1, 1);
const results = Object.fromEntries(Object.entries(contenders).map(([name, fn]) => [name, measure(fn)]));
const baseline = results["V8 JSON.parse + JSON.stringify (text)"];
console.log(`json bench: ${files.length} Synthea bundles, ${(totalBytes / 1e6).toFixed(1)} MB, node ${process.version}`);
for (const [name, mbps] of Object.entries(results)) {
  console.log(`  ${name.padEnd(42)} ${mbps.toFixed(1).padStart(7)} MB/s   ratio to V8 ${(mbps / baseline).toFixed(2)}x`);
}
if (sink === 0) console.log("(nothing written)");
