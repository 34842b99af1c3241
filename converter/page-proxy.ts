// The HTTP proxy every request of yt-dlp goes through (converter/pages.ts), one per page
// job, on 127.0.0.1. yt-dlp reads pages and follows redirects by itself, so the address
// rules of lib/link.ts cannot be applied by the caller: here each request (plain HTTP in
// absolute form, or HTTPS as a CONNECT tunnel) has its host resolved by the proxy, every
// address checked (no private or metadata address unless URL_ALLOW_HOSTS opens it), and
// the connection made to a checked address only, so DNS cannot change in between. A
// redirect is a new request from yt-dlp, and so is checked like the first. The proxy
// never sees inside a tunnel: TLS, and its certificate check, stay yt-dlp's.
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  type AllowList,
  approvedAddresses,
  BadLink,
  pinnedLookup,
  type ResolvedAddress,
  type Resolver,
} from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";

export interface PageProxyOptions {
  allow: AllowList;
  log: Logger;
  /** Replaces DNS (tests). */
  resolve?: Resolver;
}

/** A request the proxy would not make: the address rules (a private address, a host that does not exist). */
export interface ProxyRefusal {
  host: string;
  /** BadLink's words, e.g. "the link redirects to a private address". */
  message: string;
  /** The refused address and its range, when an address was the reason. */
  address?: string;
  range?: string;
}

export interface PageProxy {
  /** `http://127.0.0.1:<port>`, for yt-dlp's `--proxy`. */
  url: string;
  /** Every request refused so far, in order. */
  refusals: ProxyRefusal[];
  /** Closes the listener and every connection still open. */
  stop(): Promise<void>;
}

/** Headers that belong to one connection (RFC 9110 §7.6.1) or to the proxy: never passed on. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Starts a proxy on 127.0.0.1 (a free port) that applies `allow` to every request. */
export async function startPageProxy(options: PageProxyOptions): Promise<PageProxy> {
  const refusals: ProxyRefusal[] = [];
  const sockets = new Set<Duplex>();
  const stopping = new AbortController();
  const server = http.createServer((request, response) => void forward(request, response));
  server.on("connection", (socket: Socket) => track(socket));
  server.on("connect", (request: IncomingMessage, socket: Duplex, head: Buffer) => void tunnel(request, socket, head));

  function track(socket: Duplex) {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  }

  /** The host's checked addresses, or null after recording why not. */
  async function checked(host: string): Promise<ResolvedAddress[] | null> {
    try {
      return await approvedAddresses(host, options, stopping.signal, true);
    } catch (error) {
      if (!(error instanceof BadLink)) throw error; // LinkUnavailable: DNS trouble, answered 502
      const { address, range } = error.details as { address?: string; range?: string };
      refusals.push({ host, message: error.message, ...(address ? { address, range } : {}) });
      options.log.info({ event: "page.proxy_refused", host, address, range, reason: error.message }, "proxy refused");
      return null;
    }
  }

  /** A plain HTTP request in absolute form (`GET http://host/path`), made to a checked address. */
  async function forward(request: IncomingMessage, response: ServerResponse) {
    let target: URL;
    try {
      target = new URL(request.url ?? "");
      if (target.protocol !== "http:") throw new Error("not http");
    } catch {
      return void response.writeHead(400, { connection: "close" }).end("absolute http:// URLs only");
    }
    const host = unbracketed(target.hostname);
    const addresses = await checked(host).catch(() => undefined);
    if (addresses === undefined) return void response.writeHead(502, { connection: "close" }).end();
    if (addresses === null) return void response.writeHead(403, { connection: "close" }).end("refused");
    const upstream = http.request(
      {
        host,
        port: target.port ? Number(target.port) : 80,
        path: `${target.pathname}${target.search}`,
        method: request.method,
        headers: { ...passed(request.headers), connection: "close" },
        agent: false, // every connection through the pinned lookup
        lookup: pinnedLookup(addresses),
        signal: stopping.signal,
      },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, passed(answer.headers));
        answer.pipe(response);
        answer.on("error", () => response.destroy());
      },
    );
    upstream.on("error", () => (response.headersSent ? response.destroy() : response.writeHead(502).end()));
    request.pipe(upstream);
  }

  /** `CONNECT host:port`: a TCP tunnel to a checked address; what flows inside (TLS) is yt-dlp's. */
  async function tunnel(request: IncomingMessage, client: Duplex, head: Buffer) {
    track(client);
    let target: URL;
    try {
      target = new URL(`http://${request.url ?? ""}`);
    } catch {
      return void client.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    }
    const addresses = await checked(unbracketed(target.hostname)).catch(() => undefined);
    if (addresses === undefined) return void client.end("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n");
    if (addresses === null) return void client.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n");
    const [first] = addresses;
    const upstream = connect({ host: first!.address, port: target.port ? Number(target.port) : 443 });
    track(upstream);
    upstream.once("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => {
      if (upstream.connecting) client.end("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n");
      else client.destroy();
    });
    client.on("close", () => upstream.destroy());
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    refusals,
    stop: () =>
      new Promise<void>((resolve) => {
        stopping.abort(new Error("proxy stopped"));
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const unbracketed = (host: string) => host.replace(/^\[(.*)\]$/, "$1");

/** The headers to pass on: the end-to-end ones (Host, cookies the site set, ranges...). */
function passed(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !HOP_BY_HOP.has(name.toLowerCase())) kept[name] = value;
  return kept;
}
