// A SMART authorization server for the demo and the tests: `oidc-provider` (a certified OpenID
// Connect provider) on 127.0.0.1, issuing JWT access tokens (RS256) for the FHIR service with SMART
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

/** What a patient's app may ask for. */
const PATIENT_SCOPES = RESOURCE_SCOPES.split(" ").filter((scope) => scope.startsWith("patient/")).join(" ");

/**
 * Starts the server. `fhirBase()` names the FHIR base URL tokens are issued for (asked when a
 * token is issued, so the FHIR server may start after this one); `appRedirects` are the
 * redirect URIs of the public `patient-app` client; `users` maps a login name to its claims.
 */
export async function startAuthServer({ fhirBase, appRedirects = [], users = {}, port = 0 }) {
  const server = createServer();
  // The issuer is known once the server listens, and the provider made after it: until then,
  // a request is asked to come back (instead of waiting for an answer that never comes).
  const starting = (req, res) => {
    res.writeHead(503, { "retry-after": "1", "content-type": "text/plain" });
    res.end("starting");
  };
  server.on("request", starting);
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
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
        // A public client (no secret): patient scopes only, never user/ or system/ ones.
        client_id: "patient-app",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: appRedirects,
        post_logout_redirect_uris: appRedirects,
        scope: `openid fhirUser launch/patient ${PATIENT_SCOPES}`,
      },
    ],
    jwks: { keys: [privateJwk] },
    scopes: ["openid", "fhirUser", "launch/patient", ...RESOURCE_SCOPES.split(" ")],
    cookies: { keys: [crypto.randomUUID()] },
    claims: { openid: ["sub"], fhirUser: ["fhirUser"] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      // Sign-out pages of its own (the built-in ones load fonts from the internet).
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.body = page("Sign out", `${form}<h1>Sign out</h1><p>Sign out of the provider on this device?</p>
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>`);
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.body = page("Signed out", "<h1>Signed out</h1><p>You are signed out of the provider.</p>");
        },
      },
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
  const callback = provider.callback();
  server.off("request", starting);
  server.on("request", (req, res) => {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split("?")[0]);
    if (!match) return callback(req, res);
    interact(provider, users, req, res, match[2] !== undefined).catch((err) => {
      res.writeHead(400, { "content-type": "text/plain; charset=utf-8" });
      res.end(`sign-in failed: ${err.message}`);
    });
  });
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

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A page of the sign-in server, in the demo's style (nothing loaded from elsewhere). */
function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>${escape(title)}</title><style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
label{display:block;margin:.75rem 0 .25rem}input{font:inherit;padding:.5rem;width:100%;box-sizing:border-box}
button{font:inherit;padding:.5rem 1rem;margin:.25rem 0;background:#0b5394;color:#fff;border:1px solid #0b5394;border-radius:.25rem;cursor:pointer}
button.secondary{background:#fff;color:#0b5394}:focus-visible{outline:3px solid #1b1b1b;outline-offset:2px}
ul{padding-left:1rem}.error{color:#a00000}</style></head><body>${body}</body></html>`;
}

/** The sign-in page: a user name (the demo's users are listed), and the consent given at once. */
function loginPage(uid, users, client, error) {
  const list = Object.entries(users)
    .map(([login, user]) => `<li><button type="submit" name="login" value="${escape(login)}">${escape(login)}</button> ${escape(user.label ?? user.fhirUser ?? "")}</li>`)
    .join("");
  return page("Sign in", `<h1>Sign in</h1><p>to let <strong>${escape(client)}</strong> use your health record.</p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">User name</label><input id="login" name="login" autocomplete="username" required>
<label for="password">Password (any, in this demo)</label><input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Sign in</button></form>
${list ? `<h2>Demo users</h2><form method="post" action="/interaction/${escape(uid)}/login"><ul>${list}</ul></form>` : ""}`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

/** Runs a login or consent step of oidc-provider's interaction `uid`. */
async function interact(provider, users, req, res, submitted) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, uid } = details;
  if (prompt.name === "login") {
    if (!submitted) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(loginPage(uid, users, params.client_id));
    }
    const login = (await readForm(req)).get("login")?.trim() ?? "";
    if (Object.keys(users).length > 0 && !Object.hasOwn(users, login)) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(loginPage(uid, users, params.client_id, `There is no user "${login}" here.`));
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  // Consent: what the app asked for, granted (the demo has no consent screen of its own).
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  // A user with a patient gets patient scopes only; others, none of the patient ones.
  const patient = users[session.accountId]?.patient;
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    const fitting = scopes.filter((scope) => (patient === undefined) !== scope.startsWith("patient/"));
    if (fitting.length > 0) grant.addResourceScope(indicator, fitting.join(" "));
  }
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}
