// Which client a request to auth counts against. Only the gateway sees the client, so
// it names the address in X-Client-Address; auth believes that header only beside the
// shared GATEWAY_SECRET, or, with no secret configured, from its own machine (gateway
// and auth on one host in development). Anything else counts as the connection's own
// peer, so writing the header straight to auth earns no second address.
import { createHash, timingSafeEqual } from "node:crypto";
import ipaddr from "ipaddr.js";
import { CLIENT_ADDRESS_HEADER, GATEWAY_SECRET_HEADER, normalAddress } from "../lib/client-address.ts";

/** A request whose connection has no address (in-process tests): all such count as one client. */
export const UNKNOWN_ADDRESS = "unknown";

export interface ClientAddress {
  /** What limits and the lockout count against: IPv4 whole, IPv6 by its /64 (one subscriber's block). */
  key: string;
  /** A client address was claimed but not believed (wrong or missing secret): worth a log line. */
  refused?: string;
}

/** The client behind `headers`, given the connection's own peer address and the configured secret. */
export function clientAddress(headers: Headers, peer: string | undefined, secret: string | undefined): ClientAddress {
  const claimed = headers.get(CLIENT_ADDRESS_HEADER);
  const peerAddress = normalAddress(peer);
  const fallback = { key: addressKey(peerAddress) };
  if (claimed === null) return fallback;
  const trusted = fromGateway(headers, peer, secret);
  const address = normalAddress(claimed);
  if (!trusted || !address) return { ...fallback, refused: claimed.slice(0, 64) };
  return { key: addressKey(address) };
}

/**
 * Whether a request comes from the gateway: it shows GATEWAY_SECRET, or, with no secret
 * configured, it comes from this machine. What X-Client-Address and the internal key
 * lookup (auth/api-keys.ts) believe.
 */
export function fromGateway(headers: Headers, peer: string | undefined, secret: string | undefined): boolean {
  if (secret) return sameSecret(headers.get(GATEWAY_SECRET_HEADER), secret);
  const peerAddress = normalAddress(peer);
  return peerAddress !== undefined && ipaddr.parse(peerAddress).range() === "loopback";
}

/** The key an address counts under: IPv6 clients get a /64 each, as one household or server does. */
export function addressKey(address: string | undefined): string {
  if (!address) return UNKNOWN_ADDRESS;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv4") return address;
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${address}/64`);
  return `${network.toString()}/64`;
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function sameSecret(given: string | null, secret: string): boolean {
  if (given === null) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(secret));
}
