// Access tokens for the FHIR API: JWTs signed RS256 or ES256 by a SMART authorization server,
// verified with WebCrypto (browsers, Node 20, workerd) against the issuer's JWKS.

const ALGORITHMS = {
  RS256: { kty: "RSA", import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verify: { name: "RSASSA-PKCS1-v1_5" } },
  ES256: { kty: "EC", crv: "P-256", import: { name: "ECDSA", namedCurve: "P-256" }, verify: { name: "ECDSA", hash: "SHA-256" } },
};

/** A token that is refused: the HTTP status, and the `WWW-Authenticate` challenge to send. */
export class TokenError extends Error {
  constructor(message, { status = 401, error = "invalid_token", realm } = {}) {
    super(message);
    this.name = "TokenError";
    this.status = status;
    this.error = error;
    const quote = (text) => String(text).replace(/["\\]/g, "");
    this.challenge = error === null
      ? `Bearer realm="${quote(realm ?? "hearth")}"`
      : `Bearer realm="${quote(realm ?? "hearth")}", error="${error}", error_description="${quote(message)}"`;
  }
}

function base64UrlBytes(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TokenError("the token is not a JWT: a part is not base64url");
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let idx = 0; idx < binary.length; idx += 1) bytes[idx] = binary.charCodeAt(idx);
  return bytes;
}

function jsonPart(text, what) {
  try {
    const value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64UrlBytes(text)));
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value;
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw new TokenError(`the token's ${what} is not a JSON object`);
  }
}

/**
 * Verifies access tokens from one issuer, for one audience (the FHIR base URL).
 *
 * The issuer's keys are found through its `/.well-known/openid-configuration` (or
 * `/.well-known/smart-configuration`) unless `jwks` names them, kept, and fetched again when a
 * token names a key not known yet (a key rotation), at most once every `refreshSeconds` for
 * unknown keys. Refused: `alg` other than those allowed (never `none` or an HMAC), an unknown
 * `kid`, a bad signature, another `iss` or `aud`, a token expired or not yet valid (with
 * `leewaySeconds` for clocks that differ).
 */
export class TokenVerifier {
  #options;
  #config;
  #keys = new Map();
  /** When keys were fetched again for an unknown kid, within the last `refreshSeconds`. */
  #unknownRefreshes = [];
  #fetching;
  /** When the keys were last fetched: they are fetched again after `keysMaxAgeSeconds`. */
  #keysAt = Number.NEGATIVE_INFINITY;
  /** Tokens verified already, with their claims and expiry: a token is checked once. */
  #verified = new Map();

  /**
   * @param {{ issuer: string, audience: string, jwks?: string, algorithms?: string[],
   *   leewaySeconds?: number, refreshSeconds?: number, keysMaxAgeSeconds?: number, rolesClaim?: string,
   *   fetch?: typeof fetch, now?: () => number }} options
   */
  constructor({ issuer, audience, jwks, algorithms = ["RS256", "ES256"], leewaySeconds = 60, refreshSeconds = 10, keysMaxAgeSeconds = 3600, rolesClaim = "roles", fetch = (...args) => globalThis.fetch(...args), now = () => Date.now() }) {
    if (typeof issuer !== "string" || !/^https?:\/\//.test(issuer)) throw new TypeError(`the issuer must be an http(s) URL, not ${JSON.stringify(issuer)}`);
    if (typeof audience !== "string" || audience === "") throw new TypeError("the audience (the FHIR base URL tokens are issued for) is required");
    for (const alg of algorithms) {
      if (!Object.hasOwn(ALGORITHMS, alg)) throw new TypeError(`the algorithm ${alg} is not supported; use RS256 or ES256`);
    }
    this.#options = { issuer, audience, jwks, algorithms, leewaySeconds, refreshSeconds, keysMaxAgeSeconds, rolesClaim, fetch, now };
  }

  /** The issuer's OpenID or SMART configuration (its endpoints), fetched once. */
  async configuration() {
    if (this.#config !== undefined) return this.#config;
    const base = this.#options.issuer.replace(/\/+$/, "");
    let lastError;
    for (const path of ["/.well-known/openid-configuration", "/.well-known/smart-configuration"]) {
      try {
        const response = await this.#options.fetch(base + path, { headers: { accept: "application/json" }, redirect: "manual" });
        if (!response.ok) throw new Error(`${path} answered ${response.status}`);
        const config = await response.json();
        if (typeof config !== "object" || config === null) throw new Error(`${path} is not a JSON object`);
        this.#config = config;
        return config;
      } catch (err) {
        lastError = err;
      }
    }
    throw new Error(`the issuer ${this.#options.issuer} gives no configuration: ${lastError?.message}`);
  }

  async #refreshKeys() {
    this.#fetching ??= (async () => {
      try {
        const uri = this.#options.jwks ?? (await this.configuration()).jwks_uri;
        if (typeof uri !== "string") throw new Error("the issuer's configuration names no jwks_uri");
        const response = await this.#options.fetch(uri, { headers: { accept: "application/json" }, redirect: "manual" });
        if (!response.ok) throw new Error(`the JWKS at ${uri} answered ${response.status}`);
        const { keys } = await response.json();
        if (!Array.isArray(keys)) throw new Error(`the JWKS at ${uri} has no keys`);
        const next = new Map();
        for (const jwk of keys) {
          if (jwk && typeof jwk === "object" && (jwk.use === undefined || jwk.use === "sig")) next.set(jwk.kid ?? "", jwk);
        }
        this.#keys = next;
        this.#keysAt = this.#options.now();
        // A token verified with a key since withdrawn is checked again.
        this.#verified.clear();
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }

  async #key(kid, alg) {
    // Keys the issuer withdrew stop being trusted within keysMaxAgeSeconds.
    if (this.#keys.size === 0 || this.#options.now() - this.#keysAt > this.#options.keysMaxAgeSeconds * 1000) await this.#refreshKeys();
    let jwk = kid === undefined ? (this.#keys.size === 1 ? [...this.#keys.values()][0] : undefined) : this.#keys.get(kid);
    const now = this.#options.now();
    this.#unknownRefreshes = this.#unknownRefreshes.filter((at) => now - at < this.#options.refreshSeconds * 1000);
    if (jwk === undefined && kid !== undefined && this.#unknownRefreshes.length < 3) {
      // A key not seen yet: the issuer may have rotated its keys. Tokens naming made-up keys
      // cause three fetches every refreshSeconds at most.
      this.#unknownRefreshes.push(now);
      await this.#refreshKeys();
      jwk = this.#keys.get(kid);
    }
    if (jwk === undefined) {
      throw new TokenError(kid === undefined ? "the token names no key (kid) and the issuer has several" : `the token is signed with a key the issuer does not publish (kid ${kid})`);
    }
    const spec = ALGORITHMS[alg];
    if (jwk.kty !== spec.kty || (spec.crv !== undefined && jwk.crv !== spec.crv) || (jwk.alg !== undefined && jwk.alg !== alg)) {
      throw new TokenError(`the key ${kid ?? ""} is not a key for ${alg}`);
    }
    const { d, p, q, dp, dq, qi, ...published } = jwk;
    return crypto.subtle.importKey("jwk", published, spec.import, false, ["verify"]);
  }

  /**
   * Verifies `token` and returns its claims as the access layer takes them:
   * `{ scope, patient, encounter, fhirUser, clientId, sub, roles }`.
   * @throws {TokenError} when it is refused.
   */
  async verify(token) {
    const known = this.#verified.get(token);
    if (known !== undefined) {
      if (this.#options.now() / 1000 <= known.exp + this.#options.leewaySeconds) return known.claims;
      this.#verified.delete(token);
    }
    const checked = await this.#verifyNow(token);
    if (this.#verified.size >= 1000) this.#verified.delete(this.#verified.keys().next().value);
    this.#verified.set(token, checked);
    return checked.claims;
  }

  async #verifyNow(token) {
    const parts = String(token).split(".");
    if (parts.length !== 3) throw new TokenError("the token is not a JWT (three parts separated by dots)");
    const header = jsonPart(parts[0], "header");
    const payload = jsonPart(parts[1], "payload");
    const { alg, kid } = header;
    if (!this.#options.algorithms.includes(alg)) {
      throw new TokenError(`the token is signed with ${JSON.stringify(alg)}, which is not allowed (allowed: ${this.#options.algorithms.join(", ")})`);
    }
    if (header.crit !== undefined) throw new TokenError("the token has critical header parameters this service does not know");
    if (kid !== undefined && typeof kid !== "string") throw new TokenError("the token's kid is not a string");
    const key = await this.#key(kid, alg);
    const signed = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
    const signature = base64UrlBytes(parts[2]);
    if (alg === "ES256" && signature.length !== 64) throw new TokenError("the token's signature does not verify");
    const valid = await crypto.subtle.verify(ALGORITHMS[alg].verify, key, signature, signed);
    if (!valid) throw new TokenError("the token's signature does not verify");
    const { issuer, audience, leewaySeconds } = this.#options;
    if (payload.iss !== issuer) throw new TokenError(`the token was issued by ${JSON.stringify(payload.iss)}, not ${issuer}`);
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    const trim = (url) => (typeof url === "string" ? url.replace(/\/+$/, "") : url);
    if (!audiences.some((aud) => trim(aud) === trim(audience))) throw new TokenError(`the token is not for this service (aud ${JSON.stringify(payload.aud)}, expected ${audience})`);
    const now = this.#options.now() / 1000;
    if (typeof payload.exp !== "number") throw new TokenError("the token has no expiry (exp)");
    if (now > payload.exp + leewaySeconds) throw new TokenError(`the token expired at ${new Date(payload.exp * 1000).toISOString()}`);
    if (payload.nbf !== undefined && (typeof payload.nbf !== "number" || now < payload.nbf - leewaySeconds)) throw new TokenError("the token is not valid yet (nbf)");
    if (payload.iat !== undefined && (typeof payload.iat !== "number" || now < payload.iat - leewaySeconds)) throw new TokenError("the token was issued in the future (iat)");
    const scope = typeof payload.scope === "string" ? payload.scope : Array.isArray(payload.scp) ? payload.scp.join(" ") : "";
    const roles = payload[this.#options.rolesClaim];
    const text = (value) => (typeof value === "string" ? value : undefined);
    return {
      exp: payload.exp,
      claims: {
        scope,
        patient: text(payload.patient),
        encounter: text(payload.encounter),
        fhirUser: text(payload.fhirUser) ?? text(payload.fhir_user),
        clientId: text(payload.client_id) ?? text(payload.azp),
        sub: text(payload.sub),
        roles: Array.isArray(roles) ? roles.filter((role) => typeof role === "string") : typeof roles === "string" ? roles.split(/\s+/).filter(Boolean) : [],
      },
    };
  }

  /**
   * The claims of a request's bearer token, or the refusal to answer it with:
   * `{ claims }` or `{ refused: { status, message, challenge } }`.
   * @param {(name: string) => string | null | undefined} header a request header by name.
   * @param {Iterable<[string, string]>} query the request's query parameters.
   */
  async authorize(header, query = []) {
    try {
      for (const [name] of query) {
        if (name === "access_token") throw new TokenError("an access token is not accepted in the query string; send it in the Authorization header", { error: "invalid_request" });
      }
      const authorization = header("authorization");
      if (!authorization) throw new TokenError("this service needs an access token (Authorization: Bearer)", { error: null });
      const match = /^Bearer[ ]+([^ ]+)$/i.exec(authorization.trim());
      if (!match) throw new TokenError("the Authorization header is not a bearer token", { error: "invalid_request" });
      return { claims: await this.verify(match[1]) };
    } catch (err) {
      if (!(err instanceof TokenError)) {
        // The issuer's keys could not be fetched: the token can not be judged now.
        const refusal = new TokenError(`the token could not be checked: ${err.message}`, { realm: this.#options.audience });
        return { refused: { status: 401, message: refusal.message, challenge: refusal.challenge } };
      }
      const { challenge } = new TokenError(err.message, { status: err.status, error: err.error, realm: this.#options.audience });
      return { refused: { status: err.status, message: err.message, challenge } };
    }
  }

  /** What `/.well-known/smart-configuration` says for the FHIR service behind this verifier. */
  async smartConfiguration() {
    const config = await this.configuration();
    return {
      issuer: this.#options.issuer,
      jwks_uri: this.#options.jwks ?? config.jwks_uri,
      authorization_endpoint: config.authorization_endpoint,
      token_endpoint: config.token_endpoint,
      ...(config.registration_endpoint ? { registration_endpoint: config.registration_endpoint } : {}),
      ...(config.revocation_endpoint ? { revocation_endpoint: config.revocation_endpoint } : {}),
      ...(config.introspection_endpoint ? { introspection_endpoint: config.introspection_endpoint } : {}),
      grant_types_supported: config.grant_types_supported ?? ["authorization_code", "client_credentials"],
      token_endpoint_auth_methods_supported: config.token_endpoint_auth_methods_supported ?? ["private_key_jwt", "client_secret_basic"],
      scopes_supported: config.scopes_supported ?? ["openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs", "user/*.cruds", "system/*.rs"],
      response_types_supported: config.response_types_supported ?? ["code"],
      code_challenge_methods_supported: config.code_challenge_methods_supported ?? ["S256"],
      capabilities: [
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-standalone-patient",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
      ],
    };
  }
}
