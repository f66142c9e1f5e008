// Starting and stopping `hearth serve` for the tests that speak HTTP to it.
import { spawn } from "node:child_process";
import { NPM_DIR } from "./paths.js";

/**
 * Starts `hearth serve` on a free port (storing in `dir`, or a scratch store when it is
 * undefined); resolves with the process, the base URL, the port and what it printed so far.
 */
export function serve(dir, args = []) {
  const data = dir === undefined ? [] : ["--data", dir];
  const child = spawn(process.execPath, [`${NPM_DIR}/bin/hearth.js`, "serve", "--port", "0", ...data, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
      const match = /FHIR R4 API at (http:\/\/([\d.]+):(\d+)\/fhir)/.exec(output);
      if (match) resolve({ child, base: match[1], port: Number(match[3]), output: () => output });
    });
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("exit", (code) => reject(new Error(`hearth serve exited with ${code}: ${output}`)));
  });
}

export function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", resolve);
    child.kill("SIGKILL");
  });
}
