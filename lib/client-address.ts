// The client's address as the gateway passes it on to auth. Auth counts logins and
// registrations per address; the gateway is the only one that sees the client, so it
// names it in a header, and shows the shared secret (GATEWAY_SECRET) beside it so that
// auth can tell the gateway from anyone else who writes the same header.
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export const CLIENT_ADDRESS_HEADER = "x-client-address";
export const GATEWAY_SECRET_HEADER = "x-gateway-secret";

/** An IP address in one spelling (IPv4-mapped IPv6 as IPv4, IPv6 compressed), or undefined when it is none. */
export function normalAddress(text: string | null | undefined): string | undefined {
  // Brackets (URL form) and a zone id (`%eth0`, meaningful only on the host that wrote it) go.
  const trimmed = text
    ?.trim()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/%.*$/, "");
  if (!trimmed || !isIP(trimmed)) return undefined;
  const address = ipaddr.parse(trimmed);
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress())
    return (address as ipaddr.IPv6).toIPv4Address().toString();
  return address.toString();
}
