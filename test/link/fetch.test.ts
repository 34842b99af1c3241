// The safe fetcher against local servers: redirects, DNS pinning, refused addresses, DNS failures and HTTPS.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  BadLink,
  type FetchOptions,
  fetchVideo,
  LinkUnavailable,
  type LinkVideo,
  parseAllowList,
} from "../../lib/link.ts";
import { clip, guard, site, startInternet, startServer, stopInternet, web } from "./internet.ts";

beforeAll(startInternet);
afterAll(stopInternet);

describe("fetching a link", () => {
  const collect = async (video: LinkVideo) => {
    const chunks: Buffer[] = [];
    await pipeline([
      video.source,
      ...video.transforms,
      new Writable({
        write: (chunk, _encoding, done) => {
          chunks.push(chunk);
          done();
        },
      }),
    ]);
    return { bytes: Buffer.concat(chunks), type: (await video.sniffed).mime };
  };
  const options = (extra: Partial<FetchOptions> = {}): FetchOptions => ({
    allow: parseAllowList("localhost"),
    maxBytes: 1024 * 1024,
    timeoutMs: 5000,
    ...extra,
  });
  const failure = (link: string, extra: Partial<FetchOptions> = {}) =>
    fetchVideo(link, options(extra), collect).then(
      () => null,
      (error: Error) => error,
    );

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
    const pinned = await startServer(
      "127.0.0.2",
      (_path, response) => void response.writeHead(200, { "content-type": "video/mp4" }).end(clip),
      web.port,
    );
    const before = web.requests.length;
    let lookups = 0;
    const resolve = async () => [{ address: lookups++ === 0 ? "127.0.0.2" : "127.0.0.1", family: 4 }];
    try {
      const fetched = await fetchVideo(
        `http://rebind.test:${web.port}/clip.mp4`,
        options({ allow: parseAllowList("127.0.0.2/32"), resolve }),
        collect,
      );
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
    const resolve = async () => [
      { address: "127.0.0.1", family: 4 },
      { address: "10.0.0.1", family: 4 },
    ];
    const error = await failure(`http://mixed.test:${web.port}/clip.mp4`, {
      allow: parseAllowList("127.0.0.1/32"),
      resolve,
    });
    expect(error?.message).toBe("the link points to a private address");
    expect((error as BadLink).details).toMatchObject({ address: "10.0.0.1", range: "private" });
    expect([web.requests.length, guard.requests.length]).toEqual(before);
  });

  test("literal and named private addresses are refused without a request when not allow-listed", async () => {
    const before = [web.requests.length, guard.requests.length];
    for (const link of [
      `http://127.0.0.1:${web.port}/clip.mp4`,
      `http://localhost:${web.port}/clip.mp4`,
      `http://[::1]:${web.port}/clip.mp4`,
      `http://[::ffff:127.0.0.2]:${guard.port}/`,
    ]) {
      expect((await failure(link, { allow: parseAllowList("") }))?.message).toBe(
        "the link points to a private address",
      );
    }
    expect([web.requests.length, guard.requests.length]).toEqual(before);
  });

  test("DNS: a name that does not exist is the link's fault; a failing DNS server is worth a retry", async () => {
    const missing = await failure("http://nowhere.test/v.mp4", {
      resolve: () => Promise.reject(Object.assign(new Error("queryA ENOTFOUND"), { code: "ENOTFOUND" })),
    });
    expect(missing).toBeInstanceOf(BadLink);
    expect(missing?.message).toBe("the link's host nowhere.test does not exist");
    const servfail = await failure("http://flaky-dns.test/v.mp4", {
      resolve: () => Promise.reject(Object.assign(new Error("queryA ESERVFAIL"), { code: "ESERVFAIL" })),
    });
    expect(servfail).toBeInstanceOf(LinkUnavailable);
    const refused = await failure("http://127.0.0.1:1/v.mp4", { allow: parseAllowList("127.0.0.1") });
    expect(refused).toBeInstanceOf(LinkUnavailable);
    expect(refused?.message).toContain("ECONNREFUSED");
  });

  test("a malformed Content-Length is the link's fault (not retried); one past 2^53 is too large", async () => {
    // A raw socket: node:http refuses to send such a head. The server answers every request the same.
    let head = "";
    const server = createServer((socket) =>
      socket.once("data", () =>
        socket.end(`HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n${head}\r\nConnection: close\r\n\r\n`),
      ),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const link = `http://127.0.0.1:${(server.address() as { port: number }).port}/v.mp4`;
    const allowLocal = { allow: parseAllowList("127.0.0.1") };
    try {
      for (const malformed of [
        "Content-Length: abc",
        "Content-Length: -1",
        "Content-Length: 5, 6",
        "Content-Length: 1e3",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 99999999999999999999999",
      ]) {
        head = malformed;
        const error = await failure(link, allowLocal);
        expect(error, malformed).toBeInstanceOf(BadLink);
        expect(error?.message, malformed).toBe("the link's server sent a malformed Content-Length");
      }
      head = "Content-Length: 9007199254740993";
      const huge = await failure(link, allowLocal);
      expect(huge).toBeInstanceOf(BadLink);
      expect(huge?.message).toBe("the video is larger than 1 MiB");
    } finally {
      server.close();
    }
  });

  test("HTTPS: SNI and the certificate check use the host name while the connection goes to the checked address", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m3dio-tls-"));
    const openssl = Bun.spawnSync(
      [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-subj",
        "/CN=video.test",
        "-addext",
        "subjectAltName=DNS:video.test",
      ],
      { stderr: "pipe" },
    );
    expect(openssl.exitCode).toBe(0);
    const [key, cert] = [await Bun.file(join(dir, "key.pem")).text(), await Bun.file(join(dir, "cert.pem")).text()];
    const hosts: string[] = [];
    const server = Bun.serve({
      hostname: "127.0.0.2",
      port: 0,
      tls: { key, cert },
      fetch: (request) => {
        hosts.push(request.headers.get("host")!);
        return new Response(Uint8Array.from(clip));
      },
    });
    const tls = () =>
      options({
        allow: parseAllowList("127.0.0.2"),
        ca: cert,
        resolve: async () => [{ address: "127.0.0.2", family: 4 }],
      });
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
