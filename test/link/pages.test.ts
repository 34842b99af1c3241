// Links to video pages: the converter hands a link that answers a web page to yt-dlp
// (converter/pages.ts), whose every request goes through the job's own proxy
// (converter/page-proxy.ts). Local pages only: the "site" listens on 127.0.0.1, which the
// converter's URL_ALLOW_HOSTS opens, and a listener on 127.0.0.2 (never allow-listed)
// must never see a connection. Real RabbitMQ, MongoDB (or its stand-in), ffmpeg and the
// yt-dlp on the PATH (the version is printed; the generic extractor covers these pages).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { connect, createServer as createTcpServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PAGE_FAILURES } from "../../converter/page-failures.ts";
import { startPageProxy } from "../../converter/page-proxy.ts";
import { isKnownVideoSite } from "../../converter/pages.ts";
import { ConverterConfig, createConverter } from "../../converter.ts";
import { parseConfig } from "../../lib/config.ts";
import { type Job, jobStore, parseJobId } from "../../lib/jobs.ts";
import { linkFilename, parseAllowList } from "../../lib/link.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo, type Mongo } from "../../lib/mongo.ts";
import { connectQueue, QUEUES, type Queue } from "../../lib/queue.ts";
import { linkSigner } from "../../lib/signed-links.ts";
import { composeEmail } from "../../notifier/email.ts";
import { drainQueue, settle, waitForJob } from "../support/jobs.ts";
import { makeVideo } from "../support/media.ts";
import { dropTestDatabase, testMongoUrl } from "../support/mongo.ts";
import { createTestVhost } from "../support/rabbit.ts";
import { type LinkServer, startServer } from "./internet.ts";

const log = createLogger("pages-test", "silent");
const tmp = mkdtempSync(join(tmpdir(), "m3dio-pages-test-"));
const ytdlpVersion = Bun.spawnSync(["yt-dlp", "--version"]).stdout.toString().trim();
console.info(`yt-dlp ${ytdlpVersion || "(missing)"}`);

// ── the site ────────────────────────────────────────────────────────────────
let first: Buffer; // 3 s
let second: Buffer; // 2 s: the second video of a page with two
let site: LinkServer; // 127.0.0.1
let inward: { port: number; connections: number; server: Server }; // 127.0.0.2: must see no connection
const at = (path: string) => `http://127.0.0.1:${site.port}${path}`;
/** The size /media/stall.mp4 announces, under the small converter's MAX_UPLOAD_BYTES. */
const STALL_BYTES = 12_000;
const asked = (path: string) => site.requests.filter((request) => request.path === path).length;

const page = (title: string, body: string, head = "") =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>${head}</head><body>${body}</body></html>`;
const jsonLd = (name: string, duration: string, contentUrl: string) =>
  `<script type="application/ld+json">${JSON.stringify({
    "@context": "https://schema.org",
    "@type": "VideoObject",
    name,
    description: "a lecture",
    thumbnailUrl: at("/thumb.jpg"),
    uploadDate: "2026-01-01",
    duration,
    contentUrl,
  })}</script>`;

function pages(): Record<string, () => string> {
  return {
    "/video.html": () => page("Harbour at dawn", '<video controls src="/media/dawn.mp4"></video>'),
    "/og.html": () =>
      page(
        "A page",
        "<p>a talk</p>",
        `<meta property="og:title" content="Open Graph talk"><meta property="og:video" content="${at("/media/og.mp4")}"><meta property="og:video:type" content="video/mp4">`,
      ),
    "/ld.html": () =>
      page("A lecture page", "<p>a lecture</p>", jsonLd("JSON-LD lecture", "PT3S", at("/media/ld.mp4"))),
    "/none.html": () => page("Nothing to see", "<p>Just words, no video.</p>"),
    "/long.html": () => page("A long one", "<p>long</p>", jsonLd("Five hours", "PT5H", at("/media/long.mp4"))),
    "/login.html": () => page("Members", '<video src="/members/clip.mp4"></video>'),
    "/refused.html": () => page("Refused", '<video src="/forbidden/clip.mp4"></video>'),
    "/inward.html": () => page("Inward", '<video src="/to-private.mp4"></video>'),
    "/inward-tls.html": () =>
      page(
        "Inward over TLS",
        "",
        `<meta property="og:video" content="https://127.0.0.2:${inward.port}/clip.mp4"><meta property="og:video:type" content="video/mp4">`,
      ),
    "/big.html": () => page("Too big", '<video src="/media/big.mp4"></video>'),
    "/big-unannounced.html": () => page("Too big, unannounced", '<video src="/media/chunked.mp4"></video>'),
    "/stall.html": () => page("Stalls", '<video src="/media/stall.mp4"></video>'),
    "/two.html": () =>
      page("Two videos", '<video src="/media/first.mp4"></video><video src="/media/second.mp4"></video>'),
  };
}

/** The clip in 10 pieces, its size announced, so the download can be seen in the job's progress. */
async function sendPaced(response: ServerResponse, clip: Buffer) {
  response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) });
  const piece = Math.ceil(clip.length / 10);
  for (let offset = 0; offset < clip.length && !response.destroyed; offset += piece) {
    response.write(clip.subarray(offset, offset + piece));
    await Bun.sleep(150);
  }
  response.end();
}

async function route(path: string, response: ServerResponse) {
  const html = pages()[path];
  if (html) return void response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html());
  const video = (clip: Buffer) =>
    void response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) }).end(clip);
  switch (path) {
    case "/media/dawn.mp4":
      return sendPaced(response, first);
    case "/media/og.mp4":
    case "/media/ld.mp4":
    case "/media/long.mp4":
    case "/media/first.mp4":
      return video(first);
    case "/media/second.mp4":
      return video(second);
    case "/media/big.mp4":
      return video(first);
    case "/media/chunked.mp4": // no Content-Length: only the running count can stop it
      response.writeHead(200, { "content-type": "video/mp4" });
      return void response.end(first);
    case "/media/stall.mp4": // announced, a first piece, then nothing
      response.writeHead(200, { "content-type": "video/mp4", "content-length": String(STALL_BYTES) });
      return void response.write(first.subarray(0, 4096));
    case "/members/clip.mp4":
      return void response.writeHead(401, { "www-authenticate": 'Basic realm="members"' }).end("sign in first");
    case "/forbidden/clip.mp4":
      return void response.writeHead(403).end("not for you");
    case "/to-private.mp4":
      return void response.writeHead(302, { location: `http://127.0.0.2:${inward.port}/clip.mp4` }).end();
    default:
      return void response.writeHead(404).end();
  }
}

async function startInward() {
  const state = { port: 0, connections: 0, server: createTcpServer() };
  state.server.on("connection", (socket) => {
    state.connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => state.server.listen(0, "127.0.0.2", resolve));
  state.port = (state.server.address() as { port: number }).port;
  return state;
}

/** Pages for the converter with a small MAX_UPLOAD_BYTES (the last describe). */
const SMALL_LIMIT_PAGES = ["/big.html", "/big-unannounced.html", "/stall.html"];

// ── the converter and its stores ──────────────────────────────────────────────
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let queue: Queue;
let jobs: ReturnType<typeof jobStore>;

/** A converter in this process with a queue connection of its own; its app answers the health routes. */
async function startConverter(env: Record<string, string>) {
  const own = await connectQueue(vhost.url, log);
  const config = parseConfig(ConverterConfig, {
    MONGODB_URL: mongoUrl,
    AMQP_URL: vhost.url,
    TMP_DIR: tmp,
    LOG_LEVEL: "silent",
    SHUTDOWN_GRACE_MS: "2000",
    URL_ALLOW_HOSTS: "127.0.0.1",
    ...env,
  });
  const converter = createConverter({ config, log, mongo, queue: own });
  await converter.start();
  return {
    readiness: async () =>
      (await (await converter.app.handle(new Request("http://converter/health/ready"))).json()) as {
        status: string;
        tools?: Record<string, string>;
      },
    async stop() {
      await converter.stop();
      await own.close();
    },
  };
}

/** A link job as the gateway makes one for `POST /jobs {url}`, queued. */
async function postLink(url: string): Promise<string> {
  const job = await jobs.create({
    userId: "pages-user",
    email: "pages@example.com",
    source: {
      kind: "url",
      url,
      filename: linkFilename(new URL(url)),
      bytes: 0,
      contentType: "application/octet-stream",
    },
  });
  const id = job._id.toHexString();
  await queue.publish(QUEUES.video, { jobId: id }, { messageId: id });
  return id;
}

/** The job shows its download under way, or has finished (and never will). */
const downloadShown = (job: Job | null) =>
  Boolean(job && ((job.phase === "downloading" && job.progress > 0) || ["done", "failed"].includes(job.status)));
const finished = (id: string): Promise<Job> => waitForJob(jobs, id, ["done", "failed"], 120_000);
const videoFilesOf = (id: string) => mongo.db.collection("videos.files").countDocuments({ "metadata.jobId": id });

beforeAll(async () => {
  [first, second] = await Promise.all([
    makeVideo({ seconds: 3, faststart: true }).then((path) => Bun.file(path).bytes()),
    makeVideo({ seconds: 2, faststart: true }).then((path) => Bun.file(path).bytes()),
  ]).then((clips) => clips.map((clip) => Buffer.from(clip)));
  site = await startServer("127.0.0.1", route);
  inward = await startInward();
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  jobs = jobStore(mongo.db);
  vhost = await createTestVhost();
  queue = await connectQueue(vhost.url, log);
});
afterAll(async () => {
  await site?.stop();
  inward?.server.close();
  await queue?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
  expect(readdirSync(tmp)).toEqual([]); // every job's directory, yt-dlp's included, is gone
});

describe("the page proxy applies the link rules to every request", () => {
  test("a CONNECT to an allowed address is tunnelled; one to an address not allow-listed is 403 and never made", async () => {
    const echo = createTcpServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const echoPort = (echo.address() as { port: number }).port;
    const proxy = await startPageProxy({ allow: parseAllowList("127.0.0.1"), log });
    const tunnel = (target: string, send: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(proxy.url).port), "127.0.0.1");
        let answer = "";
        socket.on("data", (chunk) => {
          answer += chunk.toString();
          if (answer.includes("\r\n\r\n") && !answer.startsWith("HTTP/1.1 200")) socket.end();
          else if (answer.endsWith(send)) socket.end();
        });
        socket.on("close", () => resolve(answer));
        socket.on("error", reject);
        socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n${send}`);
      });
    try {
      const allowed = await tunnel(`127.0.0.1:${echoPort}`, "hello through the tunnel");
      expect(allowed).toStartWith("HTTP/1.1 200");
      expect(allowed).toEndWith("hello through the tunnel");
      const before = inward.connections;
      expect(await tunnel(`127.0.0.2:${inward.port}`, "")).toStartWith("HTTP/1.1 403");
      expect(await tunnel(`[::ffff:127.0.0.2]:${inward.port}`, "")).toStartWith("HTTP/1.1 403");
      expect(inward.connections).toBe(before);
      expect(proxy.refusals.map(({ range }) => range)).toEqual(["loopback", "loopback"]);
    } finally {
      await proxy.stop();
      echo.close();
    }
  });

  test("a plain request is made to the checked address; a name that resolves privately, or the metadata service, is 403", async () => {
    const resolve = async (host: string) => [{ address: host === "site.test" ? "127.0.0.1" : "10.1.2.3", family: 4 }];
    const proxy = await startPageProxy({ allow: parseAllowList("site.test"), log, resolve });
    const viaProxy = (url: string) =>
      new Promise<{ status: number; body: string }>((done, fail) => {
        const socket = connect(Number(new URL(proxy.url).port), "127.0.0.1");
        let answer = "";
        socket.on("data", (chunk) => (answer += chunk.toString()));
        socket.on("close", () =>
          done({ status: Number(answer.split(" ")[1]), body: answer.split("\r\n\r\n")[1] ?? "" }),
        );
        socket.on("error", fail);
        socket.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close\r\n\r\n`);
      });
    try {
      const before = site.requests.length;
      const good = await viaProxy(`http://site.test:${site.port}/none.html`);
      expect(good.status).toBe(200);
      expect(good.body).toContain("Just words, no video.");
      expect(site.requests.slice(before)).toEqual([{ path: "/none.html", host: `site.test:${site.port}` }]);
      expect((await viaProxy(`http://inside.test:${site.port}/none.html`)).status).toBe(403);
      expect((await viaProxy("http://169.254.169.254/latest/meta-data/")).status).toBe(403);
      expect(site.requests.length).toBe(before + 1);
      expect(proxy.refusals.map(({ host, range }) => ({ host, range }))).toEqual([
        { host: "inside.test", range: "private" },
        { host: "169.254.169.254", range: "metadata" },
      ]);
    } finally {
      await proxy.stop();
    }
  });

  test("known video sites go to yt-dlp at once; other links are fetched first", () => {
    expect(isKnownVideoSite("https://www.youtube.com/watch?v=dQw4w9WgXcQ")).toBe(true);
    expect(isKnownVideoSite("https://youtu.be/dQw4w9WgXcQ")).toBe(true);
    expect(isKnownVideoSite("https://vimeo.com/76979871")).toBe(true);
    expect(isKnownVideoSite("https://notyoutube.com/watch")).toBe(false);
    expect(isKnownVideoSite("https://example.com/talk.mp4")).toBe(false);
  });
});

describe("link jobs to video pages (LINK_PAGES on, the default)", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  // Posted at once and converted three at a time: each takes yt-dlp two runs.
  const posted: Record<string, string> = {};
  beforeAll(async () => {
    converter = await startConverter({ CONVERTER_CONCURRENCY: "3", URL_TIMEOUT_MS: "90000", MAX_ATTEMPTS: "2" });
    for (const path of Object.keys(pages()).filter((path) => !SMALL_LIMIT_PAGES.includes(path)))
      posted[path] = await postLink(at(path));
  });
  afterAll(() => converter?.stop());

  test("readiness reports the yt-dlp in use", async () => {
    expect(ytdlpVersion).not.toBe("");
    expect(await converter.readiness()).toMatchObject({ status: "ready", tools: { "yt-dlp": ytdlpVersion } });
  });

  test("an HTML5 <video> page: its video is downloaded (progress shows it), converted, and the job named by the video's title", async () => {
    const id = posted["/video.html"]!;
    const seen = await settle(
      () => jobs.get(parseJobId(id)!),
      (job) => downloadShown(job),
      120_000,
    );
    expect(seen).toMatchObject({ status: "converting", phase: "downloading" });
    expect(seen!.progress).toBeGreaterThan(0);
    expect(seen!.progress).toBeLessThan(50);
    const job = await finished(id);
    expect(job).toMatchObject({
      status: "done",
      source: { filename: "Harbour at dawn.mp4", contentType: "video/mp4" },
    });
    expect(Math.abs(job.audio!.durationSec - 3)).toBeLessThan(0.3);
    expect(asked("/media/dawn.mp4")).toBe(1);
    expect(
      await settle(
        () => videoFilesOf(id),
        (count) => count === 0,
      ),
    ).toBe(0);
  }, 180_000);

  test.each([
    ["an og:video page", "/og.html", "Open Graph talk.mp4", "/media/og.mp4"],
    ["a page embedding its video as JSON-LD (VideoObject)", "/ld.html", "JSON-LD lecture.mp4", "/media/ld.mp4"],
  ])(
    "%s: done, named by the video's title",
    async (_name, path, filename, media) => {
      const job = await finished(posted[path]!);
      expect(job).toMatchObject({ status: "done", source: { filename } });
      expect(Math.abs(job.audio!.durationSec - 3)).toBeLessThan(0.3);
      expect(asked(media)).toBeGreaterThan(0); // yt-dlp's generic extractor looks at a JSON-LD URL before its download
    },
    180_000,
  );

  test("a page that is a list of videos: only its first is downloaded and converted", async () => {
    const job = await finished(posted["/two.html"]!);
    expect(job.status).toBe("done");
    expect(Math.abs(job.audio!.durationSec - 3)).toBeLessThan(0.3); // the first (3 s), not the second (2 s)
    expect(asked("/media/first.mp4")).toBe(1);
    expect(asked("/media/second.mp4")).toBe(0);
  }, 180_000);

  const failures: [string, string, string, Job["errorKind"]][] = [
    ["a page with no video", "/none.html", PAGE_FAILURES.noVideo, "link"],
    ["a page whose video is longer than MAX_AUDIO_SECONDS", "/long.html", PAGE_FAILURES.tooLong, "too_long"],
    ["a page whose video needs a login (401)", "/login.html", PAGE_FAILURES.login, "login"],
    ["a page whose video is refused (403)", "/refused.html", PAGE_FAILURES.refused, "link"],
  ];
  test.each(failures)(
    "%s fails once, in words",
    async (_name, path, reason, kind) => {
      const id = posted[path]!;
      const job = await finished(id);
      expect(job).toMatchObject({ status: "failed", errorKind: kind, attempts: 1, phase: "downloading" });
      expect(job.error).toStartWith(reason);
      expect(job.videoFileId).toBeUndefined();
      expect(await videoFilesOf(id)).toBe(0);
    },
    180_000,
  );

  test("the long video is refused from its description, before any download", async () => {
    const id = posted["/long.html"]!;
    const job = await finished(id);
    expect(job.error).toBe(`${PAGE_FAILURES.tooLong}: it lasts 5:00:00, and this service converts up to 4:00:00`);
    expect(job.progress).toBe(0);
  }, 180_000);

  test("a page whose video redirects to a private address (or points at one over HTTPS) is refused by the proxy: no connection reaches it", async () => {
    for (const path of ["/inward.html", "/inward-tls.html"]) {
      const job = await finished(posted[path]!);
      expect(job).toMatchObject({ status: "failed", errorKind: "link", error: PAGE_FAILURES.private });
    }
    expect(asked("/to-private.mp4")).toBeGreaterThan(0); // the redirect was followed as far as the proxy
    expect(inward.connections).toBe(0);
  }, 180_000);

  test("the failure email of a login page says to download the video and upload it", async () => {
    const job = await finished(posted["/login.html"]!);
    const email = composeEmail(
      job,
      { MAIL_FROM: "m3dio <m3dio@example.com>", PUBLIC_URL: "http://localhost:8080" },
      linkSigner("k".repeat(32)),
    );
    expect(email.text).toContain(PAGE_FAILURES.login);
    expect(email.text).toContain("only to signed-in users");
  }, 180_000);

  test("each finished job was announced on `mp3` once", async () => {
    for (const id of Object.values(posted)) await finished(id);
    const messages = await drainQueue(vhost.url, QUEUES.mp3, Object.keys(posted).length);
    expect(messages.map((message) => message.jobId).sort()).toEqual(Object.values(posted).sort());
  }, 180_000);
});

describe("LINK_PAGES=false", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter({ LINK_PAGES: "false" });
  });
  afterAll(() => converter?.stop());

  test("a link to a video page is refused as before, and yt-dlp is never asked", async () => {
    const before = site.requests.length;
    const id = await postLink(at("/video.html"));
    const job = await finished(id);
    expect(job).toMatchObject({
      status: "failed",
      errorKind: "link",
      error: "the link is not a video (it is text/html)",
    });
    expect(site.requests.slice(before).map((request) => request.path)).toEqual(["/video.html"]);
    expect((await converter.readiness()).tools).toEqual({ "yt-dlp": "off (LINK_PAGES=false)" });
    await drainQueue(vhost.url, QUEUES.mp3, 1);
  }, 60_000);
});

describe("a converter with a small MAX_UPLOAD_BYTES", () => {
  const limits = { MAX_UPLOAD_BYTES: "16384", SHUTDOWN_GRACE_MS: "0", URL_TIMEOUT_MS: "90000" };
  let converter: Awaited<ReturnType<typeof startConverter>> | undefined;
  beforeAll(async () => {
    expect(first.length).toBeGreaterThan(16_384);
    converter = await startConverter(limits);
  });
  afterAll(() => converter?.stop());

  test.each([
    ["announced", "/big.html"],
    ["not announced (no Content-Length)", "/big-unannounced.html"],
  ])(
    "a page whose video is larger, its size %s, fails naming the limit",
    async (_name, path) => {
      const id = await postLink(at(path));
      const job = await finished(id);
      expect(job).toMatchObject({ status: "failed", errorKind: "link", error: "the video is larger than 16 KiB" });
      expect(await videoFilesOf(id)).toBe(0);
      await drainQueue(vhost.url, QUEUES.mp3, 1);
    },
    120_000,
  );

  test("stopping the worker during a page's download stops yt-dlp and hands the job back untouched", async () => {
    const id = await postLink(at("/stall.html"));
    const downloading = await settle(
      () => jobs.get(parseJobId(id)!),
      (job) => downloadShown(job),
      120_000,
    );
    expect(downloading).toMatchObject({ status: "converting", phase: "downloading" });
    await converter!.stop();
    converter = undefined;
    expect(await jobs.get(parseJobId(id)!)).toMatchObject({ status: "converting", attempts: 0 });
    expect(await videoFilesOf(id)).toBe(0);
    expect(readdirSync(tmp)).toEqual([]); // the job's directory went with yt-dlp's partial download
    await jobs.collection.deleteOne({ _id: parseJobId(id)! });
  }, 180_000);
});
