// A SMART authorization server for the tests: `oidc-provider` (a certified OpenID Connect
// provider) on 127.0.0.1, issuing JWT access tokens (RS256) for the FHIR service with SMART
// scopes and launch context (`patient`, `fhirUser`, `roles` in the token; `patient` also in
// the token response, where SMART clients read it). Its development login page signs in any
// user name; `users` says who each is.
import { createServer } from "node:http";
import Provider from "oidc-provider";

/** Resource scopes the FHIR service takes (oidc-provider grants only those it knows). */
const RESOURCE_SCOPES = [
  "patient/*.rs", "patient/*.read", "patient/*.cruds", "patient/*.*", "patient/Patient.rs", "patient/Observation.rs",
  "patient/Condition.rs", "patient/AuditEvent.rs", "patient/Observation.rs?category=laboratory",
  "user/*.rs", "user/*.cruds", "user/*.*", "user/Patient.rs",
  "system/*.*", "system/*.rs", "system/*.cruds",
].join(" ");

/**
 * Starts the server. `fhirBase()` names the FHIR base URL tokens are issued for (asked when a
 * token is issued, so the FHIR server may start after this one); `appRedirects` are the
 * redirect URIs of the public `patient-app` client; `users` maps a login name to its claims.
 */
export async function startAuthServer({ fhirBase, appRedirects = [], users = {} }) {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const pair = await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"]);
  const privateJwk = { ...(await crypto.subtle.exportKey("jwk", pair.privateKey)), kid: "test-rs256", alg: "RS256", use: "sig" };
  delete privateJwk.key_ops;
  delete privateJwk.ext;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "backend",
        client_secret: "backend-secret",
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: "client_secret_basic",
        scope: RESOURCE_SCOPES,
      },
      {
        client_id: "patient-app",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: appRedirects,
        scope: `openid fhirUser launch/patient ${RESOURCE_SCOPES}`,
      },
    ],
    jwks: { keys: [privateJwk] },
    scopes: ["openid", "fhirUser", "launch/patient", ...RESOURCE_SCOPES.split(" ")],
    cookies: { keys: ["hearth-tests-only"] },
    claims: { openid: ["sub"], fhirUser: ["fhirUser"] },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => fhirBase(),
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: RESOURCE_SCOPES,
          audience: fhirBase(),
          accessTokenTTL: 3600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    pkce: { required: () => true },
    ttl: { AccessToken: 3600, AuthorizationCode: 60, ClientCredentials: 3600, Grant: 3600, IdToken: 3600, Interaction: 600, Session: 3600 },
    clientBasedCORS: () => true,
    findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, fhirUser: users[id]?.fhirUser }) }),
    extraTokenClaims: (ctx, token) => {
      const user = token.accountId === undefined ? undefined : users[token.accountId];
      if (user === undefined) return undefined;
      return { patient: user.patient, fhirUser: user.fhirUser, roles: user.roles };
    },
  });
  // SMART clients read the launch patient from the token response.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/token" && ctx.body && typeof ctx.body.access_token === "string") {
      const payload = JSON.parse(Buffer.from(ctx.body.access_token.split(".")[1], "base64url").toString("utf8"));
      if (payload.patient) ctx.body.patient = payload.patient;
    }
  });
  server.on("request", provider.callback());
  return {
    issuer,
    /** A backend's token (client credentials) with `scope`. */
    async systemToken(scope = "system/*.*") {
      const response = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from("backend:backend-secret").toString("base64")}` },
        body: new URLSearchParams({ grant_type: "client_credentials", scope }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`the token endpoint answered ${response.status}: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(resolve);
    }),
  };
}
