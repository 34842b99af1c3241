// Who the client is, as the gateway tells auth: the connection's own peer, or, when that
// peer is a proxy listed in TRUSTED_PROXIES (an ingress, a load balancer), the address
// that proxy appended to X-Forwarded-For; walked from the right for as long as the hop is
// a trusted proxy. Entries further left were written by the client and prove nothing.
import { Type } from "@sinclair/typebox";
import type { Server } from "elysia/universal";
import ipaddr from "ipaddr.js";
import { normalAddress } from "../lib/client-address.ts";
import { checked } from "../lib/config.ts";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses a comma-separated list of IP addresses and CIDR ranges; throws naming the first bad entry. */
export function parseProxies(text: string): Range[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      if (ipaddr.isValidCIDR(entry)) return ipaddr.parseCIDR(entry);
      const address = normalAddress(entry);
      if (!address) throw new Error(`"${entry}" is neither an IP address nor a CIDR range`);
      const parsed = ipaddr.parse(address);
      return [parsed, parsed.kind() === "ipv4" ? 32 : 128] as Range;
    });
}

export const TrustedProxies = checked(
  Type.String({
    default: "",
    description: "addresses or CIDRs (comma-separated) of proxies whose X-Forwarded-For names the client",
  }),
  parseProxies,
);

/** The client's address, given the connection's peer and the X-Forwarded-For header; undefined when the peer is unknown. */
export function forwardedClient(peer: string | undefined, forwardedFor: string | null, trusted: Range[]) {
  let address = normalAddress(peer);
  const hops = (forwardedFor ?? "").split(",");
  const isTrusted = (text: string) => {
    const parsed = ipaddr.parse(text);
    return trusted.some(([range, bits]) => range.kind() === parsed.kind() && parsed.match(range, bits));
  };
  while (address && hops.length > 0 && isTrusted(address)) {
    const next = normalAddress(hops.pop());
    if (!next) break; // a proxy we trust wrote something that is no address: it stays the client
    address = next;
  }
  return address;
}

/** `forwardedClient` for a request Elysia serves (no server: an in-process `app.handle` call, no address). */
export function clientOf(request: Request, server: Server | null, trusted: Range[]): string | undefined {
  return forwardedClient(server?.requestIP(request)?.address, request.headers.get("x-forwarded-for"), trusted);
}
