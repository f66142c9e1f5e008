// Hearth at the edge: a FHIR service per tenant in a Cloudflare Durable Object, stored in the
// object's SQLite storage. `FhirDurableObject` answers the REST API of `hearth serve` for one
// tenant; the default export routes `/fhir/<tenant>/...` to the tenant's object through the
// Durable Object binding `HEARTH`.
//
// Each request runs in one storage transaction (`ctx.storage.transactionSync`): the engine's
// store calls are synchronous there, so an interaction is written whole or not at all, and a
// failure in the middle leaves nothing behind.
import { DurableObject } from "cloudflare:workers";
import { FhirService } from "./entry-workerd.js";
import { TokenVerifier } from "./auth.js";

const FHIR_JSON = "application/fhir+json; charset=utf-8";
const TENANT = /^\/fhir\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:\/|$)/;

function outcome(status, code, diagnostics, headers = {}) {
  return new Response(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] }), {
    status,
    headers: { "content-type": FHIR_JSON, "x-content-type-options": "nosniff", "cache-control": "no-store", ...headers },
  });
}

function bytes(buffer) {
  return new Uint8Array(buffer);
}

function buffer(view) {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

/**
 * The engine's store over a Durable Object's SQLite storage (`ctx.storage.sql`): one table of
 * byte keys and values, ordered as the engine's keys are made to be.
 * @param {{ sql: { exec: Function } }} storage `ctx.storage`
 */
export function durableObjectStore(storage) {
  const { sql } = storage;
  sql.exec("CREATE TABLE IF NOT EXISTS hearth_kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
  return {
    get(key) {
      const rows = sql.exec("SELECT v FROM hearth_kv WHERE k = ?", buffer(key)).toArray();
      return rows.length === 0 ? undefined : bytes(rows[0].v);
    },
    scan(start, end, limit, reverse) {
      const order = reverse ? "DESC" : "ASC";
      const cursor = end === undefined
        ? sql.exec(`SELECT k, v FROM hearth_kv WHERE k >= ? ORDER BY k ${order} LIMIT ?`, buffer(start), limit)
        : sql.exec(`SELECT k, v FROM hearth_kv WHERE k >= ? AND k < ? ORDER BY k ${order} LIMIT ?`, buffer(start), buffer(end), limit);
      return cursor.toArray().map((row) => [bytes(row.k), bytes(row.v)]);
    },
    commit(writes) {
      for (const [key, value] of writes) {
        if (value === undefined) sql.exec("DELETE FROM hearth_kv WHERE k = ?", buffer(key));
        else sql.exec("INSERT OR REPLACE INTO hearth_kv (k, v) VALUES (?, ?)", buffer(key), buffer(value));
      }
    },
  };
}

/**
 * One tenant's FHIR service. Configured from the worker's environment:
 * - `HEARTH_ISSUER`: the SMART authorization server whose access tokens are required (checked
 *   against its JWKS); `HEARTH_AUDIENCE` (default: the tenant's base URL), `HEARTH_JWKS`,
 *   `HEARTH_ROLES` (a roles file's JSON);
 * - without an issuer, requests are refused unless `HEARTH_NO_AUTH` is `"true"`: set it in
 *   `.dev.vars`, which `wrangler dev` reads on this machine and `wrangler deploy` never uploads;
 * - `HEARTH_AUDIENCE` may name the tenant as `{tenant}` (`https://api.example.org/fhir/{tenant}`):
 *   a token is for one tenant, never for all;
 * - `HEARTH_TENANTS`: the tenants served, comma-separated (others are 404 before any object is
 *   made); without it, any tenant name makes its object on first use;
 * - `HEARTH_ALLOW_ORIGINS`: web origins whose pages may call it, comma-separated.
 */
export class FhirDurableObject extends DurableObject {
  #service;
  #verifier;
  #base;

  /** The storage failure of the request being answered, if any. */
  #failure;

  constructor(ctx, env) {
    super(ctx, env);
    // A storage failure is answered by the engine as a 500; it is noted here too, so that the
    // storage transaction is rolled back rather than committed with what was written before it.
    const store = this.makeStore(ctx.storage);
    const noted = (name) => (...args) => {
      try {
        return store[name](...args);
      } catch (err) {
        this.#failure ??= err;
        throw err;
      }
    };
    this.store = { get: noted("get"), scan: noted("scan"), commit: noted("commit") };
  }

  /** The engine's store over `storage`; a subclass may wrap it. */
  makeStore(storage) {
    return durableObjectStore(storage);
  }

  #setUp(base) {
    if (this.#service !== undefined && this.#base === base) return;
    const env = this.env ?? {};
    const roles = env.HEARTH_ROLES === undefined ? undefined : String(env.HEARTH_ROLES);
    let oauth;
    if (env.HEARTH_ISSUER) {
      const tenant = base.slice(base.lastIndexOf("/") + 1);
      if (env.HEARTH_AUDIENCE !== undefined && !String(env.HEARTH_AUDIENCE).includes("{tenant}")) {
        throw new Error("HEARTH_AUDIENCE must name the tenant as {tenant} (https://api.example.org/fhir/{tenant}), so that a token is for one tenant only");
      }
      const audience = env.HEARTH_AUDIENCE === undefined ? base : String(env.HEARTH_AUDIENCE).replaceAll("{tenant}", tenant);
      this.#verifier = new TokenVerifier({ issuer: String(env.HEARTH_ISSUER), audience, jwks: env.HEARTH_JWKS });
    }
    const origins = String(env.HEARTH_ALLOW_ORIGINS ?? "").split(",").map((origin) => origin.trim()).filter(Boolean);
    this.#service = new FhirService({ baseUrl: base, store: this.store, allowedHosts: ["*"], allowedOrigins: origins, access: { roles }, oauth });
    this.#base = base;
  }

  async fetch(request) {
    const url = new URL(request.url);
    const match = TENANT.exec(url.pathname);
    if (!match) return outcome(404, "not-found", `the FHIR API is at /fhir/<tenant>/, not ${url.pathname}`);
    const base = `${url.origin}/fhir/${match[1]}`;
    try {
      this.#setUp(base);
    } catch (err) {
      return outcome(500, "exception", `the service could not start: ${err.message}`);
    }
    let path;
    try {
      path = url.pathname.slice(base.length - url.origin.length).replace(/^\/+/, "").split("/").map(decodeURIComponent).join("/");
    } catch {
      return outcome(400, "invalid", "the request path has a malformed escape");
    }
    const query = [];
    for (const pair of url.search.replace(/^\?/, "").split("&")) {
      if (pair === "") continue;
      const at = pair.indexOf("=");
      const [name, value] = at < 0 ? [pair, ""] : [pair.slice(0, at), pair.slice(at + 1)];
      try {
        query.push([decodeURIComponent(name.replace(/\+/g, " ")), decodeURIComponent(value.replace(/\+/g, " "))]);
      } catch {
        return outcome(400, "invalid", "the query has a malformed escape");
      }
    }
    const method = request.method.toUpperCase();
    const headers = {};
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const open = method === "OPTIONS" || (method === "GET" && path === "metadata");
    let claims;
    if (this.#verifier !== undefined) {
      if (method === "GET" && path === ".well-known/smart-configuration") {
        try {
          return Response.json(await this.#verifier.smartConfiguration(), { headers: { "access-control-allow-origin": "*", "cache-control": "no-store" } });
        } catch (err) {
          return outcome(503, "transient", err.message);
        }
      }
      if (!open) {
        const verdict = await this.#verifier.authorize((name) => request.headers.get(name), query);
        claims = verdict.claims ?? { refused: verdict.refused };
      }
    } else if (this.env?.HEARTH_NO_AUTH !== "true") {
      return outcome(503, "security", "this FHIR service has no authorization configured: set HEARTH_ISSUER, or HEARTH_NO_AUTH=true (in .dev.vars for wrangler dev) to serve without authorization");
    }
    const body = method === "GET" || method === "HEAD" ? new Uint8Array() : new Uint8Array(await request.arrayBuffer());
    // The whole interaction in one storage transaction: nothing of it is kept if it fails.
    let answer;
    this.#failure = undefined;
    try {
      answer = this.ctx.storage.transactionSync(() => {
        const answered = this.#service.handle({ method: method === "HEAD" ? "GET" : method, path, query, headers, body, claims });
        if (this.#failure !== undefined) throw this.#failure;
        return answered;
      });
    } catch (err) {
      return outcome(500, "exception", `the request failed and nothing of it was stored: ${err.message}`);
    }
    return new Response(method === "HEAD" || answer.status === 204 || answer.status === 304 ? null : answer.body, { status: answer.status, headers: answer.headers });
  }
}

/**
 * Routes `/fhir/<tenant>/...` to the tenant's `FhirDurableObject` (binding `HEARTH`); each
 * tenant's data lives in its own object, apart from every other tenant's.
 */
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = TENANT.exec(url.pathname);
    if (!match) return outcome(404, "not-found", `the FHIR API is at /fhir/<tenant>/, not ${url.pathname}`);
    if (env.HEARTH === undefined) return outcome(500, "exception", "the worker has no Durable Object binding named HEARTH (see wrangler.toml)");
    if (env.HEARTH_TENANTS !== undefined && !String(env.HEARTH_TENANTS).split(",").map((name) => name.trim()).includes(match[1])) {
      return outcome(404, "not-found", `there is no tenant "${match[1]}" here`);
    }
    return env.HEARTH.get(env.HEARTH.idFromName(match[1])).fetch(request);
  },
};
