// The demo's Service Worker: the FHIR endpoint `/fhir` answered from the record in IndexedDB
// (hearth-fhir's `serveFhir`, so any FHIR client on this origin works offline), and the app's
// own files cached at install (the list comes from the build's manifest), so the app opens
// with no network. Pages are fetched from the network first and from the cache offline.
import { serveFhir } from "hearth-fhir/service-worker";

const SHELL = "hearth-demo-shell-v1";
const STORE_NAME = "hearth-demo";

serveFhir({ prefix: "/fhir", name: STORE_NAME });

async function precache() {
  const cache = await caches.open(SHELL);
  const files = new Set(["/", "/manifest.webmanifest", "/icons/icon-192.png", "/icons/icon-512.png", "/demo-config.json"]);
  const manifest = await (await fetch("/asset-manifest.json", { cache: "no-store" })).json();
  for (const entry of Object.values(manifest)) {
    files.add(`/${entry.file}`);
    for (const file of [...(entry.css ?? []), ...(entry.assets ?? [])]) files.add(`/${file}`);
  }
  await cache.addAll([...files]);
}

self.addEventListener("install", (event) => event.waitUntil(precache()));
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/fhir")) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const response = await fetch(event.request);
        if (response.ok && !url.search) cache.put(event.request, response.clone());
        return response;
      } catch (err) {
        // Offline: the cached file (a page with a query, as after a sign-in, is the app).
        const cached = await cache.match(event.request, { ignoreSearch: event.request.mode === "navigate" });
        if (cached) return cached;
        throw err;
      }
    })(),
  );
});
