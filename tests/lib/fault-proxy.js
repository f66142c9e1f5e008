// An HTTP proxy on 127.0.0.1 that fails on purpose, between a sync client and a FHIR server:
// each request gets the fault `plan(index, request)` names.
//
// - "pass": forwarded, answered as the server answered;
// - "drop-request": the connection is closed before the server sees the request;
// - "drop-reply": forwarded, the server commits, then the connection is closed unanswered;
// - "500", "503", "429": answered by the proxy without forwarding (503 and 429 with
//   `Retry-After: 1`);
// - "500-after": forwarded, then answered 500 (the server committed);
// - "delay": forwarded after 300 ms;
// - "reset": the connection is reset (destroyed) before the request is read;
// - "truncate": forwarded, the reply cut in half (its Content-Length kept, so the body ends
//   early);
// - "twice": forwarded twice; the second reply is the answer.
//
// Like a reverse proxy, it rewrites the server's own URLs (in bodies and `Location`) to its
// own, and its URLs in request bodies to the server's, so that links stay on the proxy.
import http from "node:http";

function rewrite(buffer, from, to) {
  return buffer.length === 0 ? buffer : Buffer.from(buffer.toString("utf8").split(from).join(to));
}

function forward(target, method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, target);
    const request = http.request(url, { method, headers: { ...headers, host: url.host } }, (response) => {
      const chunks = [];
      response.on("data", (chunk) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

/**
 * Starts the proxy in front of `target` (`http://127.0.0.1:port`); resolves with its origin,
 * the log of faults applied, and `close()`.
 */
export async function startFaultProxy(target, plan) {
  const log = [];
  let index = 0;
  let origin;
  const upstream = new URL(target).origin;
  const relay = async (method, path, headers, body) => {
    const reply = await forward(target, method, path, headers, rewrite(body, origin, upstream));
    reply.body = rewrite(reply.body, upstream, origin);
    if (reply.headers.location) reply.headers.location = reply.headers.location.split(upstream).join(origin);
    return reply;
  };
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const fault = plan(index++, { method: req.method, url: req.url }) ?? "pass";
    log.push(`${fault} ${req.method} ${req.url}`);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.connection;
    // Bodies are rewritten: ask for them uncompressed.
    delete headers["accept-encoding"];
    const answer = (reply) => {
      const out = { ...reply.headers };
      delete out["transfer-encoding"];
      delete out.connection;
      out["content-length"] = String(reply.body.length);
      res.writeHead(reply.status, out);
      res.end(reply.body);
    };
    try {
      switch (fault) {
        case "drop-request":
        case "reset":
          req.socket.destroy();
          return;
        case "drop-reply":
          await relay(req.method, req.url, headers, body);
          req.socket.destroy();
          return;
        case "500":
        case "503":
        case "429":
          res.writeHead(Number(fault), fault === "500" ? {} : { "retry-after": "1" });
          res.end(fault === "500" ? "proxy failure" : "");
          return;
        case "500-after":
          await relay(req.method, req.url, headers, body);
          res.writeHead(500);
          res.end("proxy failure after the server answered");
          return;
        case "delay":
          await new Promise((resolve) => setTimeout(resolve, 300));
          answer(await relay(req.method, req.url, headers, body));
          return;
        case "truncate": {
          const reply = await relay(req.method, req.url, headers, body);
          const out = { ...reply.headers, "content-length": String(reply.body.length) };
          delete out["transfer-encoding"];
          res.writeHead(reply.status, out);
          res.write(reply.body.subarray(0, Math.floor(reply.body.length / 2)));
          req.socket.destroy();
          return;
        }
        case "twice":
          await relay(req.method, req.url, headers, body);
          answer(await relay(req.method, req.url, headers, body));
          return;
        default:
          answer(await relay(req.method, req.url, headers, body));
      }
    } catch (err) {
      res.writeHead(502);
      res.end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    log,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(resolve);
      }),
  };
}
