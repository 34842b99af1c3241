// Links to video pages: the converter hands a link that answers a web page to yt-dlp
// (converter/pages.ts), whose every request goes through the job's own proxy
// (converter/page-proxy.ts). Local pages only (test/link/video-site.ts). The pages converted
// and those refused for what they hold (no video, too long, a login, 403, a private address);
// test/link/pages-proxy.test.ts has the proxy itself, LINK_PAGES=false and the size limits.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PAGE_FAILURES } from "../../converter/page-failures.ts";
import { type Job, parseJobId } from "../../lib/jobs.ts";
import { QUEUES } from "../../lib/queue.ts";
import { linkSigner } from "../../lib/signed-links.ts";
import { composeEmail } from "../../notifier/email.ts";
import { drainQueue, settle } from "../support/jobs.ts";
import {
  asked,
  at,
  downloadShown,
  finished,
  inward,
  jobs,
  pages,
  postLink,
  SMALL_LIMIT_PAGES,
  startConverter,
  useVideoSite,
  vhost,
  videoFilesOf,
  ytdlpVersion,
} from "./video-site.ts";

useVideoSite();

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
