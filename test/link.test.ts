// Video links: the address classifier, the safe fetcher against local servers (a
// server on 127.0.0.1 stands for "the internet" through URL_ALLOW_HOSTS; others on
// 127.0.0.2 record any request that must never arrive), and whole link jobs through
// the in-process gateway and converter with real RabbitMQ, MongoDB and ffmpeg.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import amqp from "amqplib";
import { ObjectId } from "mongodb";
import { AuthConfig, createAuth } from "../auth.ts";
import { ConverterConfig, createConverter } from "../converter.ts";
import { GatewayConfig, createGateway } from "../gateway.ts";
import { jwksVerifier } from "../lib/bearer.ts";
import { parseConfig } from "../lib/config.ts";
import { fileStore } from "../lib/files.ts";
import { type Job, jobStore } from "../lib/jobs.ts";
import { BadLink, type FetchOptions, LinkUnavailable, type LinkVideo, addressRange, fetchVideo, parseAllowList, refusal } from "../lib/link.ts";
import { createLogger } from "../lib/log.ts";
import { connectMongo, type Mongo } from "../lib/mongo.ts";
import { QUEUES, type Queue, connectQueue } from "../lib/queue.ts";
import { makeVideo, probe } from "./support/media.ts";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";
import { createTestDatabase, type TestDatabase } from "./support/mysql.ts";
import { createTestVhost } from "./support/rabbit.ts";

const log = createLogger("link-test", "silent");
const tmp = mkdtempSync(join(tmpdir(), "m3dio-link-test-"));
const CLIP_SECONDS = 3;
let clip: Buffer;

// ── local servers ───────────────────────────────────────────────────────────
interface Recorded {
  path: string;
  host: string | undefined;
}
interface LinkServer {
  port: number;
  requests: Recorded[];
  stop(): Promise<void>;
}

/** node:http rather than Bun.serve: it keeps an explicit Content-Length on a streamed body. */
async function startServer(hostname: string, route: (path: string, response: ServerResponse, request: IncomingMessage) => void | Promise<void>, port = 0): Promise<LinkServer> {
  const requests: Recorded[] = [];
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    requests.push({ path, host: request.headers.host });
    void route(path, response, request);
  });
  await new Promise<void>((resolve) => server.listen(port, hostname, resolve));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    stop: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/** The clip in 15 pieces over about 1.5 s, with its size announced, so the download phase can be watched. */
async function sendPaced(response: ServerResponse) {
  response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) });
  const piece = Math.ceil(clip.length / 15);
  for (let offset = 0; offset < clip.length && !response.destroyed; offset += piece) {
    response.write(clip.subarray(offset, offset + piece));
    await Bun.sleep(100);
  }
  response.end();
}

let flakyCalls = 0;
/** "The internet": what a link may answer. `guardPort` is the forbidden server on 127.0.0.2. */
function internet(guardPort: () => number) {
  return async (path: string, response: ServerResponse) => {
    const hops = /^\/hops\/(\d+)\/(.+)$/.exec(path);
    if (hops) {
      const left = Number(hops[1]);
      if (left > 0) return void response.writeHead(302, { location: `/hops/${left - 1}/${hops[2]}` }).end();
      return sendPaced(response);
    }
    switch (path) {
      case "/clip.mp4":
        return void response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) }).end(clip);
      case "/missing.mp4":
        return void response.writeHead(404, { "content-type": "text/plain" }).end("not found");
      case "/page.html":
        return void response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<!doctype html><title>My video</title>".repeat(200));
      case "/endless.mp4": {
        // A real video's first bytes, then no end and no announced size: only the running count can stop it.
        response.writeHead(200, { "content-type": "video/mp4" });
        response.write(clip);
        const filler = Buffer.alloc(64 * 1024);
        while (!response.destroyed && response.write(filler)) await Bun.sleep(1);
        response.on("drain", function more() {
          while (!response.destroyed && response.write(filler));
        });
        return;
      }
      case "/announced-big.mp4":
        response.writeHead(200, { "content-type": "video/mp4", "content-length": String(5 * 1024 * 1024) });
        return void response.write(clip);
      case "/slow.mp4":
        response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) });
        return void response.write(clip.subarray(0, 8192)); // and then nothing, for ever
      case "/unavailable.mp4":
        return void response.writeHead(503).end("busy");
      case "/flaky.mp4":
        if (flakyCalls++ === 0) return void response.writeHead(503).end("busy");
        return void response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) }).end(clip);
      case "/to-unlisted.mp4":
        return void response.writeHead(302, { location: `http://127.0.0.2:${guardPort()}/clip.mp4` }).end();
      case "/to-metadata.mp4":
        return void response.writeHead(301, { location: "http://169.254.169.254/latest/meta-data/iam/security-credentials/" }).end();
      case "/to-file":
        return void response.writeHead(302, { location: "file:///etc/passwd" }).end();
      default:
        return void response.writeHead(404).end();
    }
  };
}

let web: LinkServer; // 127.0.0.1, reachable only through the allow-list
let guard: LinkServer; // 127.0.0.2, never allow-listed: must never be asked anything
const site = (path: string) => `http://localhost:${web.port}${path}`;

beforeAll(async () => {
  clip = Buffer.from(await Bun.file(await makeVideo({ seconds: CLIP_SECONDS })).arrayBuffer());
  web = await startServer("127.0.0.1", internet(() => guard.port));
  guard = await startServer("127.0.0.2", (_path, response) => void response.writeHead(200, { "content-type": "video/mp4" }).end(clip));
});
afterAll(async () => {
  await web?.stop();
  await guard?.stop();
});

// ── the address classifier ──────────────────────────────────────────────────
describe("addresses", () => {
  const table: [string, string][] = [
    ["8.8.8.8", "public"], ["93.184.216.34", "public"], ["172.32.0.1", "public"], ["100.128.0.1", "public"],
    ["127.0.0.1", "loopback"], ["127.255.255.254", "loopback"],
    ["10.0.0.1", "private"], ["172.16.0.1", "private"], ["172.31.255.255", "private"], ["192.168.1.1", "private"],
    ["100.64.0.1", "carrierGradeNat"], ["100.127.255.255", "carrierGradeNat"],
    ["169.254.1.1", "linkLocal"], ["169.254.169.254", "metadata"], ["100.100.100.200", "metadata"],
    ["0.0.0.0", "unspecified"], ["255.255.255.255", "broadcast"], ["224.0.0.1", "multicast"], ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"], ["192.0.2.1", "reserved"], ["198.51.100.7", "reserved"],
    ["2001:4860:4860::8888", "public"], ["2606:4700:4700::1111", "public"],
    ["::1", "loopback"], ["::", "unspecified"], ["fe80::1", "linkLocal"], ["febf::1", "linkLocal"],
    ["fc00::1", "uniqueLocal"], ["fd12:3456:789a::1", "uniqueLocal"], ["fd00:ec2::254", "metadata"],
    ["ff02::1", "multicast"], ["2001:db8::1", "reserved"], ["::7f00:1", "reserved"], ["4000::1", "reserved"],
    // IPv6 spellings of IPv4 addresses are judged by the IPv4 address inside.
    ["::ffff:127.0.0.1", "loopback"], ["::ffff:7f00:1", "loopback"], ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"], ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::a00:1", "private"], ["64:ff9b::808:808", "public"], ["2002:7f00:1::", "loopback"], ["2002:808:808::1", "public"],
    ["not an address", "invalid"],
  ];
  test.each(table)("%s is %s", (address, range) => {
    expect(addressRange(address)).toBe(range);
    expect(refusal(parseAllowList(""), "example.com", address)).toBe(range === "public" ? null : range);
  });

  test("the allow-list opens hosts and ranges, but a metadata address only when listed exactly", () => {
    const allow = parseAllowList(" localhost , 127.0.0.1/32, 10.1.0.0/16, [fd00::1], 169.254.0.0/16 ");
    expect(refusal(allow, "localhost", "::1")).toBeNull(); // the host name is listed
    expect(refusal(allow, "LOCALHOST.", "127.0.0.1")).toBeNull();
    expect(refusal(allow, "example.com", "127.0.0.1")).toBeNull(); // the range is listed
    expect(refusal(allow, "example.com", "::ffff:127.0.0.1")).toBeNull();
    expect(refusal(allow, "example.com", "127.0.0.2")).toBe("loopback");
    expect(refusal(allow, "example.com", "10.1.200.3")).toBeNull();
    expect(refusal(allow, "example.com", "10.2.0.1")).toBe("private");
    expect(refusal(allow, "example.com", "fd00::1")).toBeNull();
    expect(refusal(allow, "example.com", "169.254.10.10")).toBeNull();
    expect(refusal(allow, "example.com", "169.254.169.254")).toBe("metadata");
    expect(refusal(allow, "localhost", "169.254.169.254")).toBe("metadata");
    expect(refusal(parseAllowList("169.254.169.254"), "example.com", "169.254.169.254")).toBeNull();
    for (const bad of ["10.0.0.0/33", "http://example.com", "exa mple.com", "-bad-.com"]) {
      expect(() => parseAllowList(`localhost,${bad}`)).toThrow(`"${bad}"`);
    }
  });
});

// ── the fetcher itself ──────────────────────────────────────────────────────
describe("fetching a link", () => {
  const collect = async (video: LinkVideo) => {
    const chunks: Buffer[] = [];
    await pipeline([video.source, ...video.transforms, new Writable({ write: (chunk, _encoding, done) => (chunks.push(chunk), done()) })]);
    return { bytes: Buffer.concat(chunks), type: (await video.sniffed).mime };
  };
  const options = (extra: Partial<FetchOptions> = {}): FetchOptions => ({ allow: parseAllowList("localhost"), maxBytes: 1024 * 1024, timeoutMs: 5000, ...extra });
  const failure = (link: string, extra: Partial<FetchOptions> = {}) => fetchVideo(link, options(extra), collect).then(() => null, (error: Error) => error);

  test("a video arrives whole through 5 redirects; a 6th is too many", async () => {
    const fetched = await fetchVideo(site("/hops/5/a.mp4"), options(), collect);
    expect(fetched.bytes.equals(clip)).toBe(true);
    expect(fetched.type).toBe("video/mp4");
    const error = await failure(site("/hops/6/a.mp4"));
    expect(error).toBeInstanceOf(BadLink);
    expect(error?.message).toContain("too many redirects");
  });

  test("connects to the address that was checked, not to what DNS answers later (rebinding)", async () => {
    // The checked address is 127.0.0.2 (listed); a second lookup would say 127.0.0.1, where `web` listens on the same port.
    const pinned = await startServer("127.0.0.2", (_path, response) => void response.writeHead(200, { "content-type": "video/mp4" }).end(clip), web.port);
    const before = web.requests.length;
    let lookups = 0;
    const resolve = async () => [{ address: lookups++ === 0 ? "127.0.0.2" : "127.0.0.1", family: 4 }];
    try {
      const fetched = await fetchVideo(`http://rebind.test:${web.port}/clip.mp4`, options({ allow: parseAllowList("127.0.0.2/32"), resolve }), collect);
      expect(fetched.bytes.equals(clip)).toBe(true);
      expect(lookups).toBe(1);
      expect(pinned.requests).toEqual([{ path: "/clip.mp4", host: `rebind.test:${web.port}` }]);
      expect(web.requests.length).toBe(before);
    } finally {
      await pinned.stop();
    }
  });

  test("one forbidden address among a host's answers refuses the link before any connection", async () => {
    const before = [web.requests.length, guard.requests.length];
    const resolve = async () => [{ address: "127.0.0.1", family: 4 }, { address: "10.0.0.1", family: 4 }];
    const error = await failure(`http://mixed.test:${web.port}/clip.mp4`, { allow: parseAllowList("127.0.0.1/32"), resolve });
    expect(error?.message).toBe("the link points to a private address");
    expect((error as BadLink).details).toMatchObject({ address: "10.0.0.1", range: "private" });
    expect([web.requests.length, guard.requests.length]).toEqual(before);
  });

  test("literal and named private addresses are refused without a request when not allow-listed", async () => {
    const before = [web.requests.length, guard.requests.length];
    for (const link of [`http://127.0.0.1:${web.port}/clip.mp4`, `http://localhost:${web.port}/clip.mp4`, `http://[::1]:${web.port}/clip.mp4`, `http://[::ffff:127.0.0.2]:${guard.port}/`]) {
      expect((await failure(link, { allow: parseAllowList("") }))?.message).toBe("the link points to a private address");
    }
    expect([web.requests.length, guard.requests.length]).toEqual(before);
  });

  test("DNS: a name that does not exist is the link's fault; a failing DNS server is worth a retry", async () => {
    const missing = await failure("http://nowhere.test/v.mp4", { resolve: () => Promise.reject(Object.assign(new Error("queryA ENOTFOUND"), { code: "ENOTFOUND" })) });
    expect(missing).toBeInstanceOf(BadLink);
    expect(missing?.message).toBe("the link's host nowhere.test does not exist");
    const servfail = await failure("http://flaky-dns.test/v.mp4", { resolve: () => Promise.reject(Object.assign(new Error("queryA ESERVFAIL"), { code: "ESERVFAIL" })) });
    expect(servfail).toBeInstanceOf(LinkUnavailable);
    const refused = await failure("http://127.0.0.1:1/v.mp4", { allow: parseAllowList("127.0.0.1") });
    expect(refused).toBeInstanceOf(LinkUnavailable);
    expect(refused?.message).toContain("ECONNREFUSED");
  });

  test("HTTPS: SNI and the certificate check use the host name while the connection goes to the checked address", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m3dio-tls-"));
    const openssl = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-subj", "/CN=video.test", "-addext", "subjectAltName=DNS:video.test"], { stderr: "pipe" });
    expect(openssl.exitCode).toBe(0);
    const [key, cert] = [await Bun.file(join(dir, "key.pem")).text(), await Bun.file(join(dir, "cert.pem")).text()];
    const hosts: string[] = [];
    const server = Bun.serve({ hostname: "127.0.0.2", port: 0, tls: { key, cert }, fetch: (request) => (hosts.push(request.headers.get("host")!), new Response(Uint8Array.from(clip))) });
    const tls = () => options({ allow: parseAllowList("127.0.0.2"), ca: cert, resolve: async () => [{ address: "127.0.0.2", family: 4 }] });
    try {
      const fetched = await fetchVideo(`https://video.test:${server.port}/clip.mp4`, tls(), collect);
      expect(fetched.bytes.equals(clip)).toBe(true);
      expect(hosts).toEqual([`video.test:${server.port}`]);
      const wrongName = await failure(`https://other.test:${server.port}/clip.mp4`, tls());
      expect(wrongName?.message).toBe("the link's HTTPS certificate is not valid for its host");
      expect(hosts).toHaveLength(1); // the handshake failed: no request was sent
    } finally {
      server.stop(true);
    }
  });
});

// ── whole link jobs ─────────────────────────────────────────────────────────
let database: TestDatabase;
let auth: Awaited<ReturnType<typeof createAuth>>;
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let queue: Queue;
let gateway: ReturnType<typeof createGateway>;
let jobs: ReturnType<typeof jobStore>;
let user: { headers: Record<string, string> };

async function startConverter(overrides: Record<string, string>) {
  const ownQueue = await connectQueue(vhost.url, log);
  const config = parseConfig(ConverterConfig, { MONGODB_URL: mongoUrl, AMQP_URL: vhost.url, TMP_DIR: tmp, LOG_LEVEL: "silent", ...overrides });
  const converter = createConverter({ config, log, mongo, queue: ownQueue });
  await converter.start();
  return {
    async stop(graceMs = 2000) {
      await converter.stop(graceMs);
      await ownQueue.close();
    },
  };
}

const call = (path: string, init: RequestInit = {}) => gateway.app.handle(new Request(`http://gateway${path}`, init));
const postLink = (url: unknown) =>
  call("/jobs", { method: "POST", headers: { ...user.headers, "content-type": "application/json" }, body: JSON.stringify({ url }) });

async function waitForJob(id: string, timeoutMs = 30_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await jobs.get(new ObjectId(id));
    if (job && (job.status === "done" || job.status === "failed")) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job?.status} after ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}

async function takeMp3Messages(): Promise<{ jobId: string; status: string }[]> {
  const connection = await amqp.connect(vhost.url);
  const channel = await connection.createChannel();
  const messages = [];
  for (let message = await channel.get(QUEUES.mp3, { noAck: true }); message; message = await channel.get(QUEUES.mp3, { noAck: true })) {
    messages.push(JSON.parse(message.content.toString()) as { jobId: string; status: string });
  }
  await connection.close();
  return messages;
}

/** Every `status` event of a job's SSE stream, until it closes. */
async function readEvents(id: string): Promise<{ status: string; phase?: string; progress: number }[]> {
  const response = await call(`/jobs/${id}/events`, { headers: user.headers });
  expect(response.status).toBe(200);
  const text = await response.text();
  return text
    .split("\n\n")
    .filter((block) => block.includes("event: status"))
    .map((block) => JSON.parse(block.split("\n").find((line) => line.startsWith("data:"))!.slice(5)));
}

const videoFilesOf = (id: string) => mongo.db.collection("videos.files").countDocuments({ "metadata.jobId": id });

beforeAll(async () => {
  database = await createTestDatabase();
  auth = await createAuth({ config: parseConfig(AuthConfig, { MYSQL_URL: database.url, LOG_LEVEL: "silent" }) });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const authBase = `http://127.0.0.1:${auth.app.server!.port}`;
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  jobs = jobStore(mongo.db);
  vhost = await createTestVhost();
  queue = await connectQueue(vhost.url, log);
  const config = parseConfig(GatewayConfig, { AUTH_URL: authBase, MONGODB_URL: "mongodb://unused", AMQP_URL: vhost.url });
  gateway = createGateway({ config, log, mongo, queue, verifier: jwksVerifier(`${authBase}/.well-known/jwks.json`) });
  const credentials = JSON.stringify({ email: `link.${Date.now()}@example.com`, password: "link test password" });
  const json = { "content-type": "application/json" };
  expect((await call("/auth/register", { method: "POST", headers: json, body: credentials })).status).toBe(201);
  const { token } = (await (await call("/auth/login", { method: "POST", headers: json, body: credentials })).json()) as { token: string };
  user = { headers: { authorization: `Bearer ${token}` } };
});
afterAll(async () => {
  await queue?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
  await auth?.app.stop();
  await auth?.close();
  await database?.drop();
  expect(readdirSync(tmp)).toEqual([]);
});

describe("POST /jobs {url} at the gateway", () => {
  const bad: [string, unknown, string][] = [
    ["no url", undefined, "send JSON"],
    ["a number", 42, "send JSON"],
    ["not a URL", "just words", "not a valid URL"],
    ["ftp", "ftp://example.com/v.mp4", "http:// or https://"],
    ["a local file", "file:///etc/passwd", "http:// or https://"],
    ["javascript", "javascript:alert(1)", "http:// or https://"],
    ["credentials", "https://user:secret@example.com/v.mp4", "user name or password"],
    ["too long", `https://example.com/${"a".repeat(2048)}.mp4`, "longer than 2048 characters"],
    ["127.0.0.1", "http://127.0.0.1/v.mp4", "private address"],
    ["127.0.0.1 as a number", "http://2130706433/v.mp4", "private address"],
    ["[::1]", "http://[::1]:8080/v.mp4", "private address"],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/v.mp4", "private address"],
    ["the metadata service", "http://169.254.169.254/latest/meta-data/", "private address"],
    ["10.0.0.1", "https://10.0.0.1/v.mp4", "private address"],
  ];
  test.each(bad)("%s is 422 naming the field url, and nothing is queued", async (_name, url, message) => {
    const before = await jobs.collection.countDocuments();
    const response = await postLink(url);
    expect(response.status).toBe(422);
    expect(response.headers.get("content-type")).toStartWith("application/problem+json");
    const problem = (await response.json()) as { detail: string; errors: { field: string; message: string }[] };
    expect(problem.errors).toEqual([{ field: "url", message: expect.stringContaining(message) }]);
    expect(problem.detail).toContain(message);
    expect(await jobs.collection.countDocuments()).toBe(before);
  });

  test("malformed JSON is 400", async () => {
    const response = await call("/jobs", { method: "POST", headers: { ...user.headers, "content-type": "application/json" }, body: "{url:" });
    expect(response.status).toBe(400);
  });

  test("a good link is 202 with a job whose source is the link; nothing is fetched by the gateway", async () => {
    const before = web.requests.length;
    const response = await postLink(site("/media/My%20Holiday%20Clip.MP4?token=abc"));
    expect(response.status).toBe(202);
    const job = (await response.json()) as { id: string; status: string; source: unknown };
    expect(job).toMatchObject({
      status: "queued",
      progress: 0,
      source: { kind: "url", url: site("/media/My%20Holiday%20Clip.MP4?token=abc"), filename: "My Holiday Clip.MP4", bytes: 0, contentType: "application/octet-stream" },
    });
    expect(web.requests.length).toBe(before);
    const connection = await amqp.connect(vhost.url);
    const channel = await connection.createChannel();
    const message = await channel.get(QUEUES.video, { noAck: true });
    await connection.close();
    expect(message && JSON.parse(message.content.toString())).toEqual({ jobId: job.id });
    await call(`/jobs/${job.id}`, { method: "DELETE", headers: user.headers });
  });
});

describe("link jobs through the converter (localhost allow-listed)", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter({ URL_ALLOW_HOSTS: "localhost", MAX_UPLOAD_BYTES: String(1024 * 1024), URL_TIMEOUT_MS: "4000", MAX_ATTEMPTS: "2" });
  });
  afterAll(() => converter?.stop());

  test("a link behind 3 redirects is downloaded, shown as downloading, then converted to an MP3 of the video's length", async () => {
    const before = web.requests.length;
    const posted = await postLink(site("/hops/3/holiday.mp4"));
    expect(posted.status).toBe(202);
    const { id } = (await posted.json()) as { id: string };
    const events = await readEvents(id);
    expect(events.some((event) => event.status === "converting" && event.phase === "downloading")).toBe(true);
    for (const event of events.filter((event) => event.phase === "downloading")) expect(event.progress).toBeLessThan(50);
    const progress = events.map((event) => event.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b)); // never backwards
    expect(events.at(-1)).toMatchObject({ status: "done", phase: "converting", progress: 100 });

    const view = (await (await call(`/jobs/${id}`, { headers: user.headers })).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ status: "done", phase: "converting", source: { kind: "url", filename: "holiday.mp4", bytes: clip.length, contentType: "video/mp4" } });
    const audio = await call(`/jobs/${id}/audio`, { headers: user.headers });
    expect(audio.status).toBe(200);
    expect(audio.headers.get("content-disposition")).toContain("holiday.mp3");
    const mp3Path = join(mkdtempSync(join(tmpdir(), "m3dio-link-mp3-")), "out.mp3");
    await Bun.write(mp3Path, audio);
    const mp3 = await probe(mp3Path);
    expect(mp3.streams).toEqual(["audio:mp3"]);
    expect(Math.abs(mp3.durationSec - CLIP_SECONDS)).toBeLessThan(0.3);
    expect(web.requests.slice(before).map((request) => request.path)).toEqual(["/hops/3/holiday.mp4", "/hops/2/holiday.mp4", "/hops/1/holiday.mp4", "/hops/0/holiday.mp4"]);
    expect(web.requests.at(-1)?.host).toBe(`localhost:${web.port}`);
    expect(await videoFilesOf(id)).toBe(0); // the video went after success (KEEP_VIDEOS=false)
    expect(await takeMp3Messages()).toEqual([{ jobId: id, status: "done" }]);
  }, 30_000);

  const failures: [string, string, string][] = [
    ["6 redirects", "/hops/6/x.mp4", "too many redirects"],
    ["a 404", "/missing.mp4", "the link answered 404"],
    ["a web page", "/page.html", "the link is not a video (it is text/html)"],
    ["an endless body", "/endless.mp4", "the video is larger than 1 MiB"],
    ["an announced size over the limit", "/announced-big.mp4", "the video is larger than 1 MiB"],
    ["a body that stalls", "/slow.mp4", "the link did not answer within 4 s"],
    ["a redirect to an address not allow-listed", "/to-unlisted.mp4", "the link redirects to a private address"],
    ["a redirect to the metadata service", "/to-metadata.mp4", "the link redirects to a private address"],
    ["a redirect to a local file", "/to-file", "the link redirects somewhere we cannot follow"],
  ];
  test.each(failures)("%s fails the job once with a reason a person understands", async (_name, path, reason) => {
    const guarded = guard.requests.length;
    const { id } = (await (await postLink(site(path))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toContain(reason);
    expect(job.attempts).toBe(1);
    expect(job.phase).toBe("downloading");
    expect(job.videoFileId).toBeUndefined();
    expect(await videoFilesOf(id)).toBe(0); // the partial download is gone
    expect(await takeMp3Messages()).toEqual([{ jobId: id, status: "failed" }]);
    expect(guard.requests.length).toBe(guarded);
    const view = (await (await call(`/jobs/${id}`, { headers: user.headers })).json()) as { error: string };
    expect(view.error).toContain(reason);
  });

  test("a server that keeps answering 503 is retried, then given up", async () => {
    const before = web.requests.length;
    const { id } = (await (await postLink(site("/unavailable.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toStartWith("gave up after 2 attempts");
    expect(web.requests.slice(before).map((request) => request.path)).toEqual(["/unavailable.mp4", "/unavailable.mp4"]);
    expect(await takeMp3Messages()).toEqual([{ jobId: id, status: "failed" }]);
  });

  test("a refused connection is retried, then given up", async () => {
    const { id } = (await (await postLink("http://localhost:1/v.mp4")).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.error).toStartWith("gave up after 2 attempts");
    await takeMp3Messages();
  });

  test("a 503 then a good answer: the retry downloads from scratch and the job is done", async () => {
    flakyCalls = 0;
    const { id } = (await (await postLink(site("/flaky.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("done");
    expect(job.attempts).toBe(2);
    expect(flakyCalls).toBe(2);
    expect(await takeMp3Messages()).toEqual([{ jobId: id, status: "done" }]);
  });

  test("a partial video left by a killed worker is removed before the download starts again", async () => {
    const files = fileStore(mongo.db);
    const job = await jobs.create({ userId: "7", email: "seven@example.com", source: { kind: "url", url: site("/clip.mp4"), filename: "clip.mp4", bytes: 0, contentType: "application/octet-stream" } });
    const id = job._id.toHexString();
    await files.upload("videos", Readable.from([clip.subarray(0, 5000)]), { owner: "7", filename: "clip.mp4", contentType: "application/octet-stream", jobId: id });
    await queue.publish(QUEUES.video, { jobId: id }, { messageId: id });
    const done = await waitForJob(id);
    expect(done.status).toBe("done");
    expect(done.source.bytes).toBe(clip.length);
    expect(await videoFilesOf(id)).toBe(0);
    await takeMp3Messages();
  });
});

describe("stopping a worker during a download", () => {
  test("hands the job back untouched (attempt not counted) and leaves no partial video", async () => {
    const converter = await startConverter({ URL_ALLOW_HOSTS: "localhost", URL_TIMEOUT_MS: "30000" });
    const { id } = (await (await postLink(site("/slow.mp4"))).json()) as { id: string };
    for (let tries = 0; (await jobs.get(new ObjectId(id)))?.phase !== "downloading"; tries++) {
      expect(tries).toBeLessThan(100);
      await Bun.sleep(50);
    }
    await Bun.sleep(200); // the body has started to arrive
    await converter.stop(0);
    const job = (await jobs.get(new ObjectId(id)))!;
    expect(job).toMatchObject({ status: "converting", phase: "downloading", attempts: 0 });
    expect(job.videoFileId).toBeUndefined();
    expect(await videoFilesOf(id)).toBe(0);
    expect(await takeMp3Messages()).toEqual([]);
    await call(`/jobs/${id}`, { method: "DELETE", headers: user.headers }); // its requeued message is then dropped
  });
});

describe("link jobs through a converter without an allow-list", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter({});
  });
  afterAll(() => converter?.stop());

  test("a host name that resolves to 127.0.0.1 fails the job and is never fetched", async () => {
    const before = web.requests.length;
    const { id } = (await (await postLink(site("/clip.mp4"))).json()) as { id: string };
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error).toBe("the link points to a private address");
    expect(web.requests.length).toBe(before);
    expect(await takeMp3Messages()).toEqual([{ jobId: id, status: "failed" }]);
  });
});
