// Paths shared by the cross-layer tests.
import { fileURLToPath } from "node:url";
import { mkdirSync } from "node:fs";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const NPM_DIR = `${ROOT}npm`;
export const DEMO_DIR = `${ROOT}demo-app`;
export const FIXTURES = `${ROOT}tests/fixtures`;

/** tests/artifacts/<name>: screenshots and logs worth keeping after a run (git-ignored). */
export function artifactPath(name) {
  const dir = `${ROOT}tests/artifacts`;
  mkdirSync(dir, { recursive: true });
  return `${dir}/${name}`;
}
