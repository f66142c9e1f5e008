// A worker as a user deploys it (the router and the Durable Object class from
// hearth-fhir/cloudflare), plus, for the tests only, an object whose store fails in the middle
// of writing a resource marked "fail-midway", reached with the header x-test-failing.
import router, { FhirDurableObject } from "hearth-fhir/cloudflare";

export { FhirDurableObject };

export class FailingFhirObject extends FhirDurableObject {
  async fetch(request) {
    // The number of rows in the store, to tell whether anything of a failed request stayed.
    if (request.headers.get("x-test-rows") === "1") {
      return Response.json(this.ctx.storage.sql.exec("SELECT count(*) AS n FROM hearth_kv").one().n);
    }
    return super.fetch(request);
  }

  makeStore(storage) {
    const store = super.makeStore(storage);
    return {
      ...store,
      commit(writes) {
        const marked = writes.some(([, value]) => value !== undefined && new TextDecoder().decode(value).includes("fail-midway"));
        if (!marked) return store.commit(writes);
        // Half of the writes reach the storage, then the worker fails.
        store.commit(writes.slice(0, Math.ceil(writes.length / 2)));
        throw new Error("the worker failed in the middle of a commit");
      },
    };
  }
}

export default {
  async fetch(request, env, ctx) {
    if (request.headers.get("x-test-failing") === "1") {
      const tenant = new URL(request.url).pathname.split("/")[2];
      return env.FAILING.get(env.FAILING.idFromName(tenant)).fetch(request);
    }
    return router.fetch(request, env, ctx);
  },
};
