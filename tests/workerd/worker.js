// A Cloudflare-style worker that imports hearth-fhir by package name, as a user's worker would,
// and answers POSTed FHIR JSON with the engine's reading of it; under /fhir it is a FHIR REST
// service over memory (one per isolate), and under /store a FhirStore in memory, which /sync
// syncs with a remote server.
import { inspect, version, FhirError, FhirService, FhirStore } from "hearth-fhir";

let service;
let store;

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/sync") {
      // The FhirStore of /store syncs with the server named by ?remote=, by the isolate's fetch.
      store ??= await FhirStore.open({ memory: true, baseUrl: `${url.origin}/store` });
      const summary = await store.sync({ remote: url.searchParams.get("remote"), scope: { types: ["Patient"] } });
      return Response.json(summary);
    }
    if (url.pathname.startsWith("/store/")) {
      // FhirStore, the same API as in a page: its fetch answers the REST API under its base.
      store ??= await FhirStore.open({ memory: true, baseUrl: `${url.origin}/store` });
      return store.fetch(request);
    }
    if (url.pathname.startsWith("/fhir/")) {
      // The platform routes requests to the worker by host name, so the Host check (against
      // DNS rebinding of a server on the user's machine) is left to it.
      service ??= new FhirService({ baseUrl: `${url.origin}/fhir`, allowedHosts: ["*"] });
      const answer = service.handle({
        method: request.method,
        path: url.pathname.slice("/fhir/".length),
        query: url.searchParams,
        headers: request.headers,
        body: new Uint8Array(await request.arrayBuffer()),
      });
      return new Response(answer.status === 204 || answer.status === 304 ? null : answer.body, { status: answer.status, headers: answer.headers });
    }
    if (request.method === "GET") return Response.json({ engine: version() });
    const bytes = new Uint8Array(await request.arrayBuffer());
    try {
      return Response.json(inspect(bytes));
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      return new Response(JSON.stringify(err.outcome), {
        status: err.status,
        headers: { "content-type": "application/fhir+json" },
      });
    }
  },
};
