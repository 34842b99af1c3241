// Safe fetching of a video link (the converter downloads; the gateway only checks the
// link's form). Every hop's host is resolved once and every address checked against
// the private ranges; the connection then goes to those checked addresses only: a
// custom `lookup` answers with them, so DNS cannot change between check and connect
// (rebinding), while Host, TLS SNI and the certificate check still use the hostname.
// `agent: false` matters: a pooled keep-alive socket would skip the lookup entirely.
import { lookup as dnsLookup } from "node:dns/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { type Readable, Transform } from "node:stream";
import { Type } from "@sinclair/typebox";
import ipaddr from "ipaddr.js";
import { checked } from "./config.ts";
import { dispositionFilename } from "./source-names.ts";
import { byteLimit, formatBytes, NotAVideo, type Sniffed, TooLarge, videoSniffer } from "./upload.ts";

export const MAX_LINK_LENGTH = 2048;
export const MAX_REDIRECTS = 5;

/** The link itself is the problem (refused, missing, not a video...): retrying cannot help. The message is for the user. */
export class BadLink extends Error {
  override name = "BadLink";
  /** For the log only: e.g. the address that was refused, which the user is not told. */
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The link's server or DNS is briefly unwell (refused, reset, 5xx, SERVFAIL): worth another try later. */
export class LinkUnavailable extends Error {
  override name = "LinkUnavailable";
}

// ── the link's form ─────────────────────────────────────────────────────────
/** Checks the form of a link (http/https, no credentials, not too long); throws BadLink. */
export function parseLink(raw: string): URL {
  if (raw.length > MAX_LINK_LENGTH) throw new BadLink(`the link is longer than ${MAX_LINK_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new BadLink("the link is not a valid URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new BadLink("the link must start with http:// or https://");
  if (url.username || url.password) throw new BadLink("the link must not contain a user name or password");
  if (url.href.length > MAX_LINK_LENGTH) throw new BadLink(`the link is longer than ${MAX_LINK_LENGTH} characters`);
  return url;
}

/**
 * The gateway's check of a posted link: its form, and (cheap, before any DNS) a literal
 * IP that is off-limits. The converter checks the resolved addresses again.
 */
export function checkPostedLink(raw: unknown, allow: AllowList): URL {
  if (typeof raw !== "string" || raw.trim() === "")
    throw new BadLink('send JSON {"url": "https://..."} with the link of a video');
  const url = parseLink(raw);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (isIP(host) && refusal(allow, host, host)) throw new BadLink("the link points to a private address");
  return url;
}

/** A link job's first name (lib/source-names.ts). */
export { linkFilename } from "./source-names.ts";

// ── addresses ───────────────────────────────────────────────────────────────
type Address = ipaddr.IPv4 | ipaddr.IPv6;

// Cloud metadata services: AWS/GCP/Azure, AWS over IPv6, Alibaba, Oracle.
const METADATA = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"].map((text) =>
  ipaddr.parse(text),
);
const NAT64 = ipaddr.parseCIDR("64:ff9b::/96");
const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");

/**
 * What kind of address this is: "public", or the name of the range that makes it
 * off-limits (loopback, private, carrierGradeNat, linkLocal, uniqueLocal, multicast,
 * unspecified, broadcast, reserved, metadata, ...). IPv6 forms that carry an IPv4
 * address (mapped, translated, NAT64, 6to4) are judged by that IPv4 address.
 */
export function addressRange(text: string): string {
  let address: Address;
  try {
    address = ipaddr.parse(text);
  } catch {
    return "invalid";
  }
  return rangeOf(address);
}

function rangeOf(address: Address): string {
  if (
    METADATA.some(
      (meta) => meta.kind() === address.kind() && meta.toNormalizedString() === address.toNormalizedString(),
    )
  )
    return "metadata";
  if (address.kind() === "ipv4") {
    const range = (address as ipaddr.IPv4).range();
    return range === "unicast" ? "public" : range;
  }
  const v6 = address as ipaddr.IPv6;
  const range = v6.range();
  const [, , , , , , high = 0, low = 0] = v6.parts;
  const embedded = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  if (range === "ipv4Mapped" || range === "rfc6145" || v6.match(NAT64)) return rangeOf(embedded(high, low));
  if (range === "6to4") return rangeOf(embedded(v6.parts[1] ?? 0, v6.parts[2] ?? 0));
  if (range !== "unicast") return range;
  // ipaddr calls all the rest "unicast"; only 2000::/3 is routed on the internet (::a.b.c.d and friends are not).
  return v6.match(GLOBAL_UNICAST) ? "public" : "reserved";
}

/** URL_ALLOW_HOSTS: host names and IP ranges that links may reach despite the private-range rule. */
export interface AllowList {
  hosts: Set<string>;
  ranges: [Address, number][];
}

/** Parses a comma-separated list of host names, IPs and CIDRs; throws naming the first bad entry. */
/** The config field of that list: checked when the config is loaded, so a bad entry stops the service at once. */
export const AllowHosts = checked(
  Type.String({
    default: "",
    description: "hosts or CIDRs (comma-separated) links may reach despite the private-range rule",
  }),
  parseAllowList,
);

export function parseAllowList(text: string): AllowList {
  const list: AllowList = { hosts: new Set(), ranges: [] };
  for (const raw of text
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)) {
    const entry = raw.replace(/^\[(.*)\]$/, "$1");
    if (ipaddr.isValidCIDR(entry)) list.ranges.push(ipaddr.parseCIDR(entry));
    else if (ipaddr.isValid(entry) && isIP(entry)) {
      const address = ipaddr.parse(entry);
      list.ranges.push([address, address.kind() === "ipv4" ? 32 : 128]);
    } else if (
      /^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i.test(
        entry,
      )
    ) {
      list.hosts.add(normalHost(entry));
    } else throw new Error(`"${raw}" is neither a host name, an IP address nor a CIDR range`);
  }
  return list;
}

const normalHost = (host: string) => host.toLowerCase().replace(/\.$/, "");
const unmapped = (address: Address): Address =>
  address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()
    ? (address as ipaddr.IPv6).toIPv4Address()
    : address;

/**
 * Why `address` (which `host` resolved to) must not be fetched, or null if it may.
 * The allow-list opens private ranges by host name or CIDR; a metadata address only
 * opens when listed exactly, so a broad range like 169.254.0.0/16 never exposes it.
 */
export function refusal(allow: AllowList, host: string, addressText: string): string | null {
  let address: Address;
  try {
    address = unmapped(ipaddr.parse(addressText));
  } catch {
    return "invalid";
  }
  const range = rangeOf(address);
  if (range === "public") return null;
  const inList = ([net, bits]: [Address, number]) => net.kind() === address.kind() && address.match(net, bits);
  const exact = ([net, bits]: [Address, number]) =>
    inList([net, bits]) && bits === (address.kind() === "ipv4" ? 32 : 128);
  if (range === "metadata") return allow.ranges.some(exact) ? null : range;
  if (allow.hosts.has(normalHost(host)) || allow.ranges.some(inList)) return null;
  return range;
}

// ── fetching ────────────────────────────────────────────────────────────────
export interface ResolvedAddress {
  address: string;
  family: number;
}
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map(({ address, family }) => ({ address, family }));

export interface FetchOptions {
  allow: AllowList;
  maxBytes: number;
  /** For the whole download: DNS, every redirect and the body. */
  timeoutMs: number;
  maxRedirects?: number;
  /** Aborting it (e.g. on shutdown) rejects with its reason, untranslated. */
  signal?: AbortSignal;
  /** Called for every chunk received; `totalBytes` when the server said. */
  onProgress?: (bytes: number, totalBytes: number | undefined) => void;
  /** Replaces DNS (tests). */
  resolve?: Resolver;
  /** Trusted CA certificates instead of the system's (tests). */
  ca?: string;
}

/** The video as it arrives: pass `source` through `transforms` into storage. */
export interface LinkVideo {
  source: Readable;
  transforms: Transform[];
  /** The type its first bytes show; resolves once they have passed. */
  sniffed: Promise<Sniffed>;
  url: string;
  totalBytes: number | undefined;
  /** The name the response's Content-Disposition gives the file, as sent (not yet cleaned). */
  filename: string | undefined;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** What a web page is served as: such a link may be a page showing a video (converter/pages.ts). */
const WEB_PAGE_TYPES = new Set(["text/html", "application/xhtml+xml"]);
/** The link answered a web page rather than a video. */
export const isWebPage = (error: unknown): error is BadLink => error instanceof BadLink && error.details.page === true;
const HEADERS = {
  "user-agent": "m3dio/1 (video link download)",
  accept: "video/*, application/octet-stream;q=0.8, */*;q=0.1",
  "accept-encoding": "identity",
};
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENETDOWN",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

/**
 * Fetches `link` (following at most 5 redirects, each hop checked) and hands the body
 * to `store`. Fails with BadLink (the user must change the link) or LinkUnavailable
 * (try later); errors of `store` itself pass through.
 */
export async function fetchVideo<T>(
  link: string,
  options: FetchOptions,
  store: (video: LinkVideo) => Promise<T>,
): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error("link timeout")), options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline.signal, options.signal]) : deadline.signal;
  let response: IncomingMessage | undefined;
  let declaredType = "";
  let received = 0;
  const onAbort = () => response?.destroy(signal.reason as Error);
  signal.addEventListener("abort", onAbort);
  try {
    let url = parseLink(link);
    for (let redirects = 0; ; redirects++) {
      response = await get(url, options, signal, redirects > 0);
      const status = response.statusCode ?? 0;
      if (REDIRECTS.has(status)) {
        response.destroy();
        if (redirects >= (options.maxRedirects ?? MAX_REDIRECTS))
          throw new BadLink(
            `too many redirects: the link redirected more than ${options.maxRedirects ?? MAX_REDIRECTS} times`,
          );
        url = nextHop(url, response.headers.location, status);
        continue;
      }
      if (status >= 500 || status === 408 || status === 429) throw new LinkUnavailable(`the link answered ${status}`);
      if (status < 200 || status >= 300) throw new BadLink(`the link answered ${status}`);
      declaredType = String(response.headers["content-type"] ?? "")
        .split(";")[0]!
        .trim()
        .toLowerCase();
      // The parser has checked it is digits; past 2^53 it is still a size, and too large.
      const length = Number(response.headers["content-length"]);
      const totalBytes = response.headers["content-length"] && Number.isSafeInteger(length) ? length : undefined;
      if (length > options.maxBytes) throw new TooLarge(options.maxBytes);
      const sniffer = videoSniffer();
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          received += chunk.length;
          options.onProgress?.(received, totalBytes);
          done(null, chunk);
        },
      });
      return await store({
        source: response,
        transforms: [counter, byteLimit(options.maxBytes), sniffer],
        sniffed: sniffer.sniffed,
        url: url.href,
        totalBytes,
        filename: dispositionFilename(response.headers["content-disposition"]),
      });
    }
  } catch (error) {
    response?.destroy();
    if (options.signal?.aborted) throw options.signal.reason;
    if (deadline.signal.aborted) throw new BadLink(`the link did not answer within ${seconds(options.timeoutMs)}`);
    throw explain(error, declaredType, received);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

/** One request to a checked address; resolves with the response head. */
async function get(
  url: URL,
  options: FetchOptions,
  signal: AbortSignal,
  redirected: boolean,
): Promise<IncomingMessage> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses = await approvedAddresses(host, options, signal, redirected);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(
      {
        host,
        port: url.port ? Number(url.port) : undefined,
        path: `${url.pathname}${url.search}`,
        method: "GET",
        headers: HEADERS,
        agent: false, // no pooled socket: every connection goes through `lookup` below
        lookup: pinnedLookup(addresses),
        signal,
        ...(options.ca ? { ca: options.ca } : {}),
      },
      resolve,
    );
    request.on("error", reject);
    request.end();
  });
}

/**
 * Resolves `host` once and checks every address; throws unless all may be reached.
 * Exported with `pinnedLookup` for the other outbound requests (webhooks): connect to these.
 */
export async function approvedAddresses(
  host: string,
  options: Pick<FetchOptions, "allow" | "resolve">,
  signal: AbortSignal,
  redirected: boolean,
): Promise<ResolvedAddress[]> {
  const family = isIP(host);
  const addresses = family
    ? [{ address: host, family }]
    : await lookupHost(host, options.resolve ?? systemResolver, signal);
  for (const { address } of addresses) {
    const range = refusal(options.allow, host, address);
    if (range)
      throw new BadLink(`the link ${redirected ? "redirects" : "points"} to a private address`, {
        host,
        address,
        range,
      });
  }
  return addresses;
}

async function lookupHost(host: string, resolve: Resolver, signal: AbortSignal): Promise<ResolvedAddress[]> {
  let addresses: ResolvedAddress[];
  try {
    addresses = await Promise.race([
      resolve(host),
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }),
    ]);
  } catch (error) {
    if (signal.aborted) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (["ENOTFOUND", "ENODATA", "EAI_NONAME", "NXDOMAIN"].includes(code))
      throw new BadLink(`the link's host ${host} does not exist`);
    throw new LinkUnavailable(`the link's host ${host} could not be looked up (${code || "DNS error"})`);
  }
  if (addresses.length === 0) throw new BadLink(`the link's host ${host} does not exist`);
  return addresses;
}

/** A `lookup` that answers only the addresses already checked, whatever name it is asked for. */
export function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    const family = options.family === 4 || options.family === 6 ? options.family : 0;
    const wanted = family ? addresses.filter((entry) => entry.family === family) : addresses;
    const first = wanted[0];
    if (!first)
      return callback(Object.assign(new Error("no checked address of that family"), { code: "ENOTFOUND" }), "", 0);
    if (options.all) callback(null, wanted);
    else callback(null, first.address, first.family);
  };
}

function nextHop(from: URL, location: string | undefined, status: number): URL {
  if (!location) throw new BadLink(`the link answered ${status} without saying where to`);
  let target: string;
  try {
    target = new URL(location, from).href;
  } catch {
    throw new BadLink("the link redirects to something that is not a valid URL");
  }
  try {
    return parseLink(target);
  } catch (error) {
    throw new BadLink(
      `the link redirects somewhere we cannot follow: ${(error as Error).message.replace(/^the link /, "it ")}`,
    );
  }
}

/** Turns what went wrong into a BadLink or LinkUnavailable a person understands; anything else passes. */
function explain(error: unknown, declaredType: string, received: number): unknown {
  if (error instanceof BadLink || error instanceof LinkUnavailable) return error;
  if (error instanceof TooLarge) return new BadLink(`the video is larger than ${formatBytes(error.limit)}`);
  if (error instanceof NotAVideo) {
    const what =
      received === 0 ? "it sent nothing" : /^[\w.+-]+\/[\w.+-]+$/.test(declaredType) ? `it is ${declaredType}` : "";
    return new BadLink(`the link is not a video${what ? ` (${what})` : ""}`, {
      page: WEB_PAGE_TYPES.has(declaredType),
    });
  }
  const code = String((error as NodeJS.ErrnoException)?.code ?? "");
  // The HTTP parser refused the answer's Content-Length (not a number, negative, too large,
  // or two that differ): the server says the same next time, so it is the link's fault.
  if (code === "HPE_INVALID_CONTENT_LENGTH" || code === "HPE_UNEXPECTED_CONTENT_LENGTH")
    return new BadLink("the link's server sent a malformed Content-Length");
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code))
    return new BadLink("the link's HTTPS certificate is not valid for its host");
  if (TRANSIENT_CODES.has(code) || /socket hang up|aborted|closed/i.test((error as Error)?.message ?? "")) {
    return new LinkUnavailable(`the link could not be reached (${code || (error as Error).message})`);
  }
  return error;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 1000 ? 2 : 1))} s`;
}
