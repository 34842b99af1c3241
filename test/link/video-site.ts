// The site and converter the video page tests share (test/link/pages*.test.ts): a "site" on
// 127.0.0.1 (which the converter's URL_ALLOW_HOSTS opens) serving pages and their videos, a
// listener on 127.0.0.2 (never allow-listed) that must never see a connection, and a
// converter in this process over real RabbitMQ (a vhost of the file's own), MongoDB (or its
// stand-in), ffmpeg and the yt-dlp on the PATH. The bindings are live: `useVideoSite()` sets
// them in beforeAll and takes them down in afterAll.
import { afterAll, beforeAll, expect } from "bun:test";
import { mkdtempSync, readdirSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { createServer as createTcpServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConverterConfig, createConverter } from "../../converter.ts";
import { parseConfig } from "../../lib/config.ts";
import { type Job, jobStore } from "../../lib/jobs.ts";
import { linkFilename } from "../../lib/link.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo, type Mongo } from "../../lib/mongo.ts";
import { connectQueue, QUEUES, type Queue } from "../../lib/queue.ts";
import { waitForJob } from "../support/jobs.ts";
import { makeVideo } from "../support/media.ts";
import { dropTestDatabase, testMongoUrl } from "../support/mongo.ts";
import { createTestVhost } from "../support/rabbit.ts";
import { type LinkServer, startServer } from "./internet.ts";

export const log = createLogger("pages-test", "silent");
export const ytdlpVersion = Bun.spawnSync(["yt-dlp", "--version"]).stdout.toString().trim();
console.info(`yt-dlp ${ytdlpVersion || "(missing)"}`);
/** The converters' TMP_DIR, made by useVideoSite(): empty again once every job is over. */
export let tmp: string;

// ── the site ────────────────────────────────────────────────────────────────
export let first: Buffer; // 3 s
let second: Buffer; // 2 s: the second video of a page with two
export let site: LinkServer; // 127.0.0.1
export let inward: { port: number; connections: number; server: Server }; // 127.0.0.2: must see no connection
export const at = (path: string) => `http://127.0.0.1:${site.port}${path}`;
/** The size /media/stall.mp4 announces, under the small converter's MAX_UPLOAD_BYTES. */
const STALL_BYTES = 12_000;
export const asked = (path: string) => site.requests.filter((request) => request.path === path).length;

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

export function pages(): Record<string, () => string> {
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

/** Pages for the converter with a small MAX_UPLOAD_BYTES (in pages-proxy.test.ts). */
export const SMALL_LIMIT_PAGES = ["/big.html", "/big-unannounced.html", "/stall.html"];

// ── the converter and its stores ──────────────────────────────────────────────
export let mongo: Mongo;
let mongoUrl: string;
export let vhost: Awaited<ReturnType<typeof createTestVhost>>;
export let queue: Queue;
export let jobs: ReturnType<typeof jobStore>;

/** A converter in this process with a queue connection of its own; its app answers the health routes. */
export async function startConverter(env: Record<string, string>) {
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
export async function postLink(url: string): Promise<string> {
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
export const downloadShown = (job: Job | null) =>
  Boolean(job && ((job.phase === "downloading" && job.progress > 0) || ["done", "failed"].includes(job.status)));
export const finished = (id: string): Promise<Job> => waitForJob(jobs, id, ["done", "failed"], 120_000);
export const videoFilesOf = (id: string) =>
  mongo.db.collection("videos.files").countDocuments({ "metadata.jobId": id });

/** Starts the site and the stores in beforeAll and takes them down in afterAll of the calling test file. */
export function useVideoSite() {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "m3dio-pages-test-"));
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
}
