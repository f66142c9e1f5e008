// A minimal token issuer on 127.0.0.1 for the token tests: it publishes an OpenID
// configuration and a JWKS whose keys the test can rotate, and signs whatever claims and
// headers a test asks for (so that each attack can be made). Keys are made with WebCrypto.
import { createServer } from "node:http";

const RSA = { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
const EC = { name: "ECDSA", namedCurve: "P-256" };

export function base64Url(bytes) {
  return Buffer.from(bytes).toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const jsonPart = (value) => base64Url(new TextEncoder().encode(JSON.stringify(value)));

/** A signing key: `{ kid, alg, privateKey, publicJwk }`. */
export async function makeKey(alg, kid) {
  const pair = await crypto.subtle.generateKey(alg === "RS256" ? RSA : EC, true, ["sign", "verify"]);
  const publicJwk = { ...(await crypto.subtle.exportKey("jwk", pair.publicKey)), kid, alg, use: "sig" };
  delete publicJwk.key_ops;
  delete publicJwk.ext;
  return { kid, alg, privateKey: pair.privateKey, publicJwk };
}

/** A JWT of `payload` signed with `key`; `header` adds to or replaces the header. */
export async function sign(key, payload, header = {}) {
  const head = jsonPart({ alg: key.alg, typ: "JWT", kid: key.kid, ...header });
  const body = jsonPart(payload);
  const data = new TextEncoder().encode(`${head}.${body}`);
  const algorithm = key.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" };
  const signature = new Uint8Array(await crypto.subtle.sign(algorithm, key.privateKey, data));
  return `${head}.${body}.${base64Url(signature)}`;
}

/** Starts the issuer; `keys` are published in its JWKS (`issuer.keys` can be replaced). */
export async function startIssuer(keys) {
  const state = { keys, jwksFetches: 0 };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({
        issuer: state.issuer,
        jwks_uri: `${state.issuer}/jwks`,
        authorization_endpoint: `${state.issuer}/auth`,
        token_endpoint: `${state.issuer}/token`,
      }));
    } else if (url.pathname === "/jwks") {
      state.jwksFetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: state.keys.map((key) => key.publicJwk) }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.issuer = `http://127.0.0.1:${server.address().port}`;
  state.close = () => new Promise((resolve) => server.close(resolve));
  return state;
}
