// A Cloudflare-style worker that imports hearth-fhir by package name, as a user's worker would,
// and answers POSTed FHIR JSON with the engine's reading of it.
import { inspect, version, FhirError } from "hearth-fhir";

export default {
  async fetch(request) {
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
