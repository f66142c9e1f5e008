// A static file server on 127.0.0.1 for the browser tests: the npm package as a page loads it
// (/pkg/...), the test pages (/pages/...), the test Service Worker at the root (/sw.js, so
// that its scope covers /fhir), and browser bundles of npm clients (/vendor/...).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { build } from "esbuild";
import { NPM_DIR, ROOT } from "./paths.js";

const TYPES = {
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".html": "text/html; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ndjson": "application/x-ndjson",
};

const PAGES = `${ROOT}tests/store/pages`;

/** Bundles `fhir-kit-client` for the browser (it is written for Node and bundlers). */
async function vendorBundle() {
  const result = await build({
    stdin: { contents: 'export { Client } from "fhir-kit-client";', resolveDir: ROOT, loader: "js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "error",
    define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
  });
  return result.outputFiles[0].text;
}

/** Starts the server, with `files` (path → text) served besides; resolves to `{ origin, close() }`. */
export async function startStaticServer({ files = {} } = {}) {
  const vendor = { "/vendor/fhir-kit-client.js": await vendorBundle(), ...files };
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file;
    if (vendor[path] !== undefined) {
      res.writeHead(200, { "Content-Type": TYPES[extname(path)] ?? "text/plain" });
      res.end(vendor[path]);
      return;
    }
    if (path === "/sw.js") file = join(PAGES, "sw.js");
    else if (path.startsWith("/pkg/")) file = join(NPM_DIR, normalize(path.slice(4)));
    else if (path.startsWith("/pages/")) file = join(PAGES, normalize(path.slice(6)));
    if (!file || (!file.startsWith(NPM_DIR) && !file.startsWith(PAGES))) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("not found");
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Cache-Control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Opens the test page in `context`; the page's uncaught errors collect in `page.errors`. */
export async function openTestPage(context, origin) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(err.message));
  await page.goto(`${origin}/pages/index.html`);
  await page.waitForSelector("body[data-ready=true]", { state: "attached" });
  return page;
}

/** Registers the test Service Worker (/sw.js) and waits until it controls `page`. */
export async function controlByWorker(page) {
  await page.evaluate(async () => {
    await navigator.serviceWorker.register("/sw.js", { type: "module" });
    await navigator.serviceWorker.ready;
  });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
}
