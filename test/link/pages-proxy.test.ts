// Links to video pages, what guards them: the proxy every request of yt-dlp goes through
// (converter/page-proxy.ts) applies the link rules, LINK_PAGES=false refuses pages as
// before, and MAX_UPLOAD_BYTES holds for a page's video; stopping the worker stops yt-dlp.
// Local pages only (test/link/video-site.ts); test/link/pages.test.ts has the pages converted.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { connect, createServer as createTcpServer } from "node:net";
import { startPageProxy } from "../../converter/page-proxy.ts";
import { isKnownVideoSite } from "../../converter/pages.ts";
import { parseJobId } from "../../lib/jobs.ts";
import { parseAllowList } from "../../lib/link.ts";
import { QUEUES } from "../../lib/queue.ts";
import { drainQueue, settle } from "../support/jobs.ts";
import {
  at,
  downloadShown,
  finished,
  first,
  inward,
  jobs,
  log,
  postLink,
  site,
  startConverter,
  tmp,
  useVideoSite,
  vhost,
  videoFilesOf,
} from "./video-site.ts";

useVideoSite();

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
