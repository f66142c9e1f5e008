// The two sync peers on 127.0.0.1: `hearth serve`, and Helios `hfs` (an independent R4
// server; scripts/setup.sh installs it, see ../shared/HELIOS.md for its quirks).
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../lib/paths.js";
import { serve, stop } from "../lib/serve.js";

export const HFS = process.env.HEARTH_HFS ?? join(homedir(), ".cache/hearth-hfs/bin/hfs");

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `hearth serve` on a scratch store (`args`: more options of `hearth serve`). */
export async function startHearth(args = []) {
  const { child, base } = await serve(undefined, args);
  return { name: "hearth serve", base, stop: () => stop(child) };
}

/** Starts Helios `hfs` on a fresh SQLite database with the R4 search parameters. */
export async function startHelios() {
  if (!existsSync(HFS)) throw new Error(`Helios hfs is not installed at ${HFS}; run scripts/setup.sh`);
  const dir = mkdtempSync(join(tmpdir(), "hearth-hfs-"));
  mkdirSync(join(dir, "data"));
  copyFileSync(join(ROOT, "node_modules/hl7.fhir.r4.examples/Bundle-searchParams.json"), join(dir, "data/search-parameters-r4.json"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(HFS, ["--host", "127.0.0.1", "--port", String(port), "--database-url", join(dir, "fhir.db"), "--data-dir", join(dir, "data"), "--base-url", base], {
    env: { ...process.env, HFS_SEED_CONFORMANCE: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hfs exited: ${output.slice(-2000)}`);
    try {
      const health = await fetch(`${base}/health`);
      if (health.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`hfs did not start: ${output.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    name: "Helios hfs",
    base,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}
