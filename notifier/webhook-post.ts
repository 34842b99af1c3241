// One try of one webhook delivery: a signed POST, as the Standard Webhooks specification
// says (headers webhook-id, webhook-timestamp, webhook-signature `v1,<base64 HMAC-SHA256
// of "<id>.<timestamp>.<body>">`, keyed by the base64-decoded part of the `whsec_` secret).
// The URL follows the link rules (lib/link.ts) at every try: its host is resolved once,
// every address checked against the private ranges, and the connection made to those
// checked addresses only (a pinned `lookup`, no pooled socket), so a DNS answer that turns
// private is refused and cannot be slipped in between the check and the connection.
// Redirects are not followed (a 3xx is a failed try), as the specification recommends.
import { createHmac } from "node:crypto";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import {
  type AllowList,
  approvedAddresses,
  BadLink,
  LinkUnavailable,
  parseLink,
  pinnedLookup,
  type Resolver,
} from "../lib/link.ts";

export interface PostOptions {
  allow: AllowList;
  /** For the whole try: DNS, connecting and the answer's head. */
  timeoutMs: number;
  /** Replaces DNS (tests). */
  resolve?: Resolver;
}

/** How a try ended: the receiver's status, or why it was not answered (`refused`: a private address). */
export type PostResult =
  | { status: number; retryAfterMs?: number }
  | { error: string; refused?: { host: string; address: string; range: string } };

/** The `webhook-signature` value for one try. */
export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** Posts `body` to `url`, signed with `secret` under message id `id`; never throws. */
export async function postSigned(
  url: string,
  message: { id: string; body: string; secret: string },
  options: PostOptions,
): Promise<PostResult> {
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const target = parseLink(url);
    const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
    const addresses = await approvedAddresses(host, options, signal, false);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(message.body)),
      "user-agent": "m3dio-webhooks/1",
      "webhook-id": message.id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signature(message.secret, message.id, timestamp, message.body),
    };
    const response = await request(target, host, { headers, body: message.body, addresses, signal });
    // Only the status matters: the body is not read (a receiver cannot keep the try busy with it).
    response.destroy();
    const status = response.statusCode ?? 0;
    const retryAfter = Number(response.headers["retry-after"]);
    return Number.isSafeInteger(retryAfter) && retryAfter > 0
      ? { status, retryAfterMs: retryAfter * 1000 }
      : { status };
  } catch (error) {
    if (signal.aborted) return { error: `no answer within ${options.timeoutMs} ms` };
    if (error instanceof BadLink) {
      const { host, address, range } = error.details as { host?: string; address?: string; range?: string };
      const reason = error.message.replace(/^the link/, "the URL");
      return host && address && range ? { error: reason, refused: { host, address, range } } : { error: reason };
    }
    if (error instanceof LinkUnavailable) return { error: error.message.replace(/^the link/, "the URL") };
    const code = (error as NodeJS.ErrnoException).code;
    return { error: `could not be reached (${code ?? (error as Error).message})` };
  }
}

function request(
  target: URL,
  host: string,
  {
    headers,
    body,
    addresses,
    signal,
  }: {
    headers: Record<string, string>;
    body: string;
    addresses: Awaited<ReturnType<typeof approvedAddresses>>;
    signal: AbortSignal;
  },
): Promise<IncomingMessage> {
  const client = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const outgoing = client.request(
      {
        host,
        port: target.port ? Number(target.port) : undefined,
        path: `${target.pathname}${target.search}`,
        method: "POST",
        headers,
        agent: false, // no pooled socket: every connection goes through the pinned lookup
        lookup: pinnedLookup(addresses),
        signal,
      },
      resolve,
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}
