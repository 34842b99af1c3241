// The web page in headless Chromium against the real stack (test/support/web-stack.ts):
// each test is one person's visit, checked by what the page shows. Screenshots land
// in test-artifacts/. The page, a video converted, retrying; test/web-errors.test.ts has
// quotas, errors and links. The API client's pure parts are in web-client.test.ts.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import { fileStore } from "../lib/files.ts";
import { jobStore } from "../lib/jobs.ts";
import { probe } from "./support/media.ts";
import {
  alert,
  audioReady,
  jobItem,
  loggedIn,
  logIn,
  loginForm,
  recordBadges,
  register,
  sendFile,
  textOf,
} from "./support/web-stack.ts";
import {
  ARTIFACTS,
  base,
  browser,
  mongo,
  newEmail,
  registerByApi,
  tmp,
  useWebVisits,
  VIDEO_SECONDS,
  video,
  visit,
} from "./support/web-visits.ts";

useWebVisits();

// ── the page itself ─────────────────────────────────────────────────────────
describe("the page", () => {
  test("loads from the gateway alone, with hashed assets cached for good and nothing from elsewhere", async () => {
    const requests: string[] = [];
    const context = await browser.newContext();
    context.on("request", (request) => requests.push(request.url()));
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
    const response = await page.goto(base);
    expect(response?.headers()["content-type"]).toStartWith("text/html");
    expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'");
    expect(response?.headers()["content-encoding"]).toBe("gzip");
    const etag = response?.headers().etag;
    expect((await fetch(base, { headers: { "if-none-match": etag! } })).status).toBe(304); // revalidated, not sent again
    await page.getByRole("heading", { name: "Turn your videos into MP3s" }).waitFor();
    expect(await page.title()).toBe("m3dio · videos to MP3");
    await expect(loginForm(page).getByLabel("Email").isVisible()).resolves.toBe(true);
    expect(requests.every((url) => url.startsWith(`${base}/`))).toBe(true);
    const assets = requests.filter((url) => url.includes("/web/"));
    expect(assets.length).toBeGreaterThanOrEqual(3); // script, style sheet, icon
    for (const asset of assets) {
      const answer = await fetch(asset);
      expect(answer.status).toBe(200);
      expect(answer.headers.get("cache-control")).toContain("immutable");
    }
    expect((await fetch(`${base}/web/nothing.js`)).status).toBe(404);
    expect(errors).toEqual([]); // no CSP violation, no script error
    await context.close();
  });
});

// ── one person's whole visit ────────────────────────────────────────────────
describe("converting a video", () => {
  test("register, log out and in, upload, watch it finish live, play, download, delete", async () => {
    const { page, errors } = await visit({ viewport: { width: 1100, height: 900 } });
    const email = newEmail();
    const name = "Holiday in Rome.mp4";
    const mp3Name = "Holiday in Rome.mp3";

    // Register: the page logs the new account in.
    await register(page, email);
    await loggedIn(page, email);
    await page.getByText("Your account is ready.").waitFor();
    await page.getByText("Nothing here yet").waitFor();

    // Log out, then log back in.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByText("You have logged out.").waitFor();
    expect(await page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
    await logIn(page, email);
    await loggedIn(page, email);

    // Upload with the file chooser and follow it live on this one page load.
    const streams: { url: string; authorization?: string }[] = [];
    page.on(
      "request",
      (request) =>
        request.url().endsWith("/events") &&
        streams.push({ url: request.url(), authorization: request.headers().authorization }),
    );
    const badges = await recordBadges(page);
    // A slow uplink (16 KiB/s) so the upload's progress can be seen.
    const devtools = await page.context().newCDPSession(page);
    const uplink = (bytesPerSecond: number) =>
      devtools.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: bytesPerSecond,
      });
    await devtools.send("Network.enable");
    await uplink(16 * 1024);
    await sendFile(page, { name, mimeType: "video/mp4", buffer: video });
    const uploading = page.getByRole("progressbar", {
      name: new RegExp(`^Uploading ${RegExp.escape(name)}: [1-9]\\d?% of \\d+ KB$`),
    });
    await uploading.waitFor();
    expect(await uploading.evaluate((bar: HTMLProgressElement) => bar.value)).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, "web-uploading.png") });
    await uplink(-1);
    await page.getByText(`${name} is uploaded.`).waitFor();
    await expect(uploading.isVisible()).resolves.toBe(false);
    const item = jobItem(page, name);
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    // Told to screen readers too, through a live region.
    expect(
      await page
        .locator("[aria-live]")
        .filter({ hasText: `${name}: converted, ready to play or download.` })
        .count(),
    ).toBe(1);
    const seen = await badges();
    expect(seen[0]).toMatch(/^(Next|\d+(st|nd|rd|th)) in line$/); // queued, with its place
    expect(seen.at(-1)).toBe("Done");
    expect(streams.length).toBeGreaterThanOrEqual(1);
    expect(streams[0]!.authorization).toStartWith("Bearer ");
    expect(await textOf(item)).toMatch(new RegExp(`MP3 0:0${VIDEO_SECONDS}, [\\d.]+ KB · [\\d.]+ KB video`));
    await expect(item.getByRole("progressbar").isVisible()).resolves.toBe(false);

    // Play: the <audio> element plays the MP3's signed link (no token in the player), as long as the video.
    await item.getByRole("button", { name: "Play" }).click();
    const audio = await audioReady(page, item);
    const { src, seconds } = await audio.evaluate((element: HTMLAudioElement) => ({
      src: element.src,
      seconds: element.duration,
    }));
    expect(src).toMatch(new RegExp(`^${RegExp.escape(base)}/jobs/[0-9a-f]{24}/audio\\?expires=\\d+&sig=[\\w-]+$`));
    expect(Math.abs(seconds - VIDEO_SECONDS)).toBeLessThan(0.5);
    await page.screenshot({ path: join(ARTIFACTS, "web-finished.png"), fullPage: true });

    // Download: an MP3 named after the video.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      item.getByRole("button", { name: "Download MP3" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(mp3Name);
    const saved = join(tmp, "downloaded.mp3");
    await download.saveAs(saved);
    const mp3 = await probe(saved);
    expect(mp3.format).toBe("mp3");
    expect(mp3.streams).toEqual(["audio:mp3", "video:mjpeg"]); // a frame of the video is its cover
    expect(Math.abs(mp3.durationSec - VIDEO_SECONDS)).toBeLessThan(0.5);
    await page.getByText(`Downloading ${mp3Name}.`).waitFor();

    // Delete asks once more, then the job is gone from the page and from the server.
    const jobId = await item.getAttribute("data-id");
    await item.getByRole("button", { name: "Delete" }).click();
    await item.getByRole("button", { name: "Confirm delete" }).click();
    await item.waitFor({ state: "detached" });
    await page.getByText(`Deleted ${name}.`).waitFor();
    await page.getByText("Nothing here yet").waitFor();
    expect(
      await mongo.db.collection("jobs").countDocuments({ _id: new (await import("mongodb")).ObjectId(jobId!) }),
    ).toBe(0);
    expect(errors).toEqual([]);
  });

  test("on a phone-sized screen, a finished job fits the width and its buttons can be tapped", async () => {
    const { page, errors } = await visit({
      viewport: { width: 360, height: 740 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
    });
    const { email } = await registerByApi();
    await logIn(page, email);
    await loggedIn(page, email);
    const name = "A rather long name for a phone screen, from the summer trip.mp4";
    await sendFile(page, { name, mimeType: "video/mp4", buffer: video });
    const item = jobItem(page, name);
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    await item.getByRole("button", { name: "Play" }).tap();
    await audioReady(page, item);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    // Download and Delete are behind "More".
    await item.getByRole("button", { name: /^More actions for / }).tap();
    for (const button of [
      item.getByRole("button", { name: "Download MP3" }),
      item.getByRole("button", { name: "Delete" }),
      page.getByRole("button", { name: "Log out" }),
    ]) {
      const box = (await button.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(360);
      expect(box.height).toBeGreaterThanOrEqual(36);
    }
    // The phone's own screen, 360x740, scrolled to the finished job.
    await item.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, "web-phone.png") });
    expect(errors).toEqual([]);
  });

  test("progress and a failure reach the page as they happen", async () => {
    const { email, userId } = await registerByApi();
    const jobs = jobStore(mongo.db);
    // A job the converter never sees (nothing is queued): the test moves it along as a converter would.
    const job = await jobs.create({
      userId,
      email,
      source: { kind: "upload", filename: "lecture.mkv", bytes: 12_345_678, contentType: "video/x-matroska" },
    });
    const { page, errors } = await visit();
    await logIn(page, email);
    const item = jobItem(page, "lecture.mkv");
    await item.getByText(/^(Next|\d+(st|nd|rd|th)) in line$/).waitFor();
    expect(await textOf(item)).toContain("12 MB video");
    await jobs.startConverting(job._id);
    await jobs.setProgress(job._id, 40);
    await item.getByText("Converting 40%", { exact: true }).waitFor();
    expect(
      await item
        .getByRole("progressbar", { name: "Progress of lecture.mkv" })
        .evaluate((bar: HTMLProgressElement) => bar.value),
    ).toBe(40);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(ARTIFACTS, "web-progress-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    await jobs.markFailed(job._id, "the video has no audio track");
    await item.getByText("Failed", { exact: true }).waitFor();
    await item.getByText("Could not convert: the video has no audio track").waitFor();
    expect(await page.locator("[aria-live]").filter({ hasText: "lecture.mkv: could not be converted." }).count()).toBe(
      1,
    );
    await expect(item.getByRole("button", { name: "Play" }).isVisible()).resolves.toBe(false);
    await expect(item.getByRole("button", { name: "Delete" }).isVisible()).resolves.toBe(true);
    expect(errors).toEqual([]);
  });
});

describe("retrying", () => {
  test("a failed job says until when it is kept and has a Retry button that converts it again", async () => {
    const { email, userId } = await registerByApi();
    const jobs = jobStore(mongo.db);
    // A job that failed as a converter that gave up leaves it, its video kept for a retry.
    const stored = await fileStore(mongo.db).upload("videos", Readable.from([video]), {
      owner: userId,
      filename: "interview.mp4",
      contentType: "video/mp4",
    });
    const job = await jobs.create({
      userId,
      email,
      videoFileId: stored.id,
      source: { kind: "upload", filename: "interview.mp4", bytes: stored.bytes, contentType: "video/mp4" },
    });
    await jobs.startConverting(job._id);
    const failed = (await jobs.markFailed(job._id, "gave up after 3 attempts; please try again later"))!;
    const { page, errors } = await visit();
    await logIn(page, email);
    const item = jobItem(page, "interview.mp4");
    await item.getByText("Failed", { exact: true }).waitFor();
    const until = await page.evaluate(
      (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium" }),
      failed.expiresAt!.toISOString(),
    );
    expect(await textOf(item)).toContain(`kept until ${until}`);
    await expect(item.getByRole("button", { name: "Play" }).isVisible()).resolves.toBe(false);

    await item.getByRole("button", { name: "Retry" }).click();
    await page.getByText("Converting interview.mp4 again.").waitFor();
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    await expect(item.getByRole("button", { name: "Retry" }).isVisible()).resolves.toBe(false);
    await expect(item.getByRole("button", { name: "Play" }).isVisible()).resolves.toBe(true);
    await expect(item.getByText(/Could not convert/).isVisible()).resolves.toBe(false);
    expect(await page.locator("[aria-live]").filter({ hasText: "interview.mp4: converted" }).count()).toBe(1);
    expect(errors).toEqual([]);
  });

  test("a retry refused because the video is no longer kept says so", async () => {
    const { email, userId } = await registerByApi();
    const jobs = jobStore(mongo.db);
    // A failed link job whose downloaded video has since gone.
    const job = await jobs.create({
      userId,
      email,
      videoFileId: new ObjectId(),
      source: {
        kind: "url",
        url: "https://example.com/gone.mp4",
        filename: "gone.mp4",
        bytes: 9,
        contentType: "video/mp4",
      },
    });
    await jobs.startConverting(job._id);
    await jobs.markFailed(job._id, "the video has no audio track");
    const { page } = await visit();
    await logIn(page, email);
    const item = jobItem(page, "gone.mp4");
    await item.getByRole("button", { name: "Retry" }).click();
    await alert(page).getByText("That conversion's files are no longer kept.").waitFor();
    expect(await textOf(alert(page))).toContain("The job's video is no longer kept; upload the video again.");
    await expect(item.getByText("Failed", { exact: true }).isVisible()).resolves.toBe(true);
  });
});
