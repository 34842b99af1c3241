// The web page in headless Chromium against the real stack (test/support/web-stack.ts):
// each test is one person's visit, checked by what the page shows. Screenshots land
// in test-artifacts/. The API client's pure parts are in web-client.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import type { Browser } from "playwright-core";
import { fileStore } from "../lib/files.ts";
import { jobStore } from "../lib/jobs.ts";
import type { Mongo } from "../lib/mongo.ts";
import { openPage, type TestPage } from "./support/browser.ts";
import { gatewayClient } from "./support/client.ts";
import { probe } from "./support/media.ts";
import {
  alert,
  audioReady,
  jobItem,
  jobItems,
  loggedIn,
  logIn,
  loginForm,
  PASSWORD,
  recordBadges,
  register,
  registerForm,
  sendFile,
  textOf,
  webStack,
} from "./support/web-stack.ts";

const ARTIFACTS = join(import.meta.dir, "..", "test-artifacts");
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const USER_STORAGE_BYTES = 16 * 1024 * 1024;
const VIDEO_SECONDS = 3;
// A browser, real conversions and argon2 logins: more than bun's 5 s default (bunfig's `timeout` is not applied).
setDefaultTimeout(60_000);

const stack = webStack({
  maxUploadBytes: MAX_UPLOAD_BYTES,
  videoSeconds: VIDEO_SECONDS,
  userStorageBytes: USER_STORAGE_BYTES,
});
let browser: Browser;
let base: string;
let mongo: Mongo;
let video: Buffer;
let tmp: string;
const pages: TestPage[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ({ browser, base, mongo, video, tmp } = await stack.start());
});

// Each test's pages go when it ends, so no stream or poll of one test runs into the next.
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});

afterAll(() => stack.stop());

// ── helpers ─────────────────────────────────────────────────────────────────
let userCounter = 0;
const newEmail = () => `web${++userCounter}.${Date.now()}@example.com`;

async function visit(options: Parameters<typeof openPage>[2] = {}): Promise<TestPage> {
  const opened = await openPage(browser, base, options);
  pages.push(opened);
  return opened;
}

/** Registers through the API (for tests about something else than registering). */
async function registerByApi() {
  const user = await gatewayClient(base).newUser("web", PASSWORD);
  return { email: user.email, userId: user.id };
}

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

// ── quotas ──────────────────────────────────────────────────────────────────
describe("quotas", () => {
  const usageLine = (page: TestPage["page"]) => page.locator("#usage");

  test("the page shows what the account uses as it changes, and why a video is refused when the storage is full", async () => {
    const { email, userId } = await registerByApi();
    const { page, errors } = await visit();
    await logIn(page, email);
    await usageLine(page).getByText("0 bytes of 16 MB used · 0 of 5 conversions active").waitFor();

    await sendFile(page, { name: "talk.mp4", mimeType: "video/mp4", buffer: video });
    const item = jobItem(page, "talk.mp4");
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    // Once it is done, its MP3 is stored and its place is free.
    await page.waitForFunction(() =>
      /^[1-9][\d.]* KB of 16 MB used · 0 of 5 conversions active$/.test(
        document.querySelector("#usage-text")?.textContent ?? "",
      ),
    );
    await item.getByRole("button", { name: "Delete" }).click();
    await item.getByRole("button", { name: "Confirm delete" }).click();
    await usageLine(page).getByText("0 bytes of 16 MB used · 0 of 5 conversions active").waitFor();

    // Earlier videos fill the account but for a few bytes.
    await fileStore(mongo.db).upload("videos", Readable.from([Buffer.alloc(USER_STORAGE_BYTES - 1000)]), {
      owner: userId,
      filename: "earlier.mp4",
      contentType: "video/mp4",
    });
    await sendFile(page, { name: "second.mp4", mimeType: "video/mp4", buffer: video });
    await alert(page).getByText("Your storage is full: there is no room for “second.mp4”.").waitFor();
    expect(await textOf(alert(page))).toContain("The video would pass your storage quota of 16 MiB");
    await usageLine(page).getByText("16 MB of 16 MB used · 0 of 5 conversions active").waitFor();
    expect(await jobItem(page, "second.mp4").count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, "web-storage-full.png") });
    expect(errors).toEqual([]);
  });

  test("with the most conversions under way, a new one is refused with when to try again", async () => {
    const { email, userId } = await registerByApi();
    const jobs = jobStore(mongo.db);
    const source = { kind: "url", url: "https://example.com/a.mp4", bytes: 0, contentType: "video/mp4" } as const;
    // Five jobs waiting their turn (never published, so they stay queued).
    for (let i = 0; i < 5; i++)
      await jobs.create({ userId, email, source: { ...source, filename: `waiting-${i}.mp4` } });
    const { page } = await visit();
    await logIn(page, email);
    await usageLine(page).getByText("0 bytes of 16 MB used · 5 of 5 conversions active").waitFor();
    await page.getByLabel("Or paste a link to a video").fill("https://example.com/talk.mp4");
    await page.getByRole("button", { name: "Convert link" }).click();
    await alert(page)
      .getByText("You have 5 conversions under way already. Please try again in 30 seconds, once one has finished.")
      .waitFor();
    expect(await textOf(alert(page))).toContain("MAX_ACTIVE_JOBS");
    expect(await jobItems(page).count()).toBe(5);
  });
});

// ── what goes wrong, in words for a person ──────────────────────────────────
describe("errors", () => {
  test("a wrong password shows the API's message; repeated failures say how long to wait", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email, "not the password");
    await alert(page).getByText("Wrong email or password.").waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "web-login-error.png") });
    const password = loginForm(page).getByLabel("Password", { exact: true });
    expect(await password.evaluate((input) => input === document.activeElement)).toBe(true);
    let status = 0;
    for (let attempt = 0; attempt < 6 && status !== 429; attempt++) {
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith("/auth/login")),
        page.getByRole("button", { name: "Log in" }).click(),
      ]);
      status = answer.status();
    }
    expect(status).toBe(429);
    // The lockout, said once: the reason, then how long to wait.
    const message = await textOf(alert(page));
    expect(message).toMatch(
      /^Too many failed logins for this account from your address\. Please wait 1[45] minutes before trying again\.$/,
    );
  });

  test("registering twice says so; a short password is caught before sending, by the rule stated up front", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await register(page, email);
    await alert(page).getByText("An account with this email already exists.").waitFor();
    const form = registerForm(page);
    const password = form.getByLabel("Password", { exact: true });
    expect(await textOf(form)).toContain("8 to 256 characters.");
    expect(await password.getAttribute("autocomplete")).toBe("new-password");
    const sent: string[] = [];
    page.on("request", (request) => request.url().endsWith("/auth/register") && sent.push(request.url()));
    await form.getByLabel("Email").fill(newEmail());
    await password.fill("short");
    await form.getByRole("button", { name: "Create account" }).click();
    // The browser holds it back with the same rule; nothing is sent.
    expect(await password.evaluate((input: HTMLInputElement) => input.validity.tooShort)).toBe(true);
    expect(await password.evaluate((input) => input === document.activeElement)).toBe(true);
    expect(sent).toEqual([]);
    expect(errors).toEqual([]);
  });

  test("a text file shows the 415 message and adds no job", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    await sendFile(page, {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("just some text, not a video\n".repeat(200)),
    });
    await alert(page).getByText("“notes.txt” isn't a video or audio file we can convert.").waitFor();
    expect(await textOf(alert(page))).toContain("The file is not a video or an audio file");
    await page.screenshot({ path: join(ARTIFACTS, "web-upload-error.png") });
    await expect(page.getByText("Nothing here yet").isVisible()).resolves.toBe(true);
    await expect(jobItems(page).count()).resolves.toBe(0);
  });

  test("a video over the size limit shows the 413 message", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    // A real video's first bytes (so it passes as a video), padded past the limit.
    const big = Buffer.concat([video, Buffer.alloc(MAX_UPLOAD_BYTES + 100_000 - video.length)]);
    await sendFile(page, { name: "long film.mp4", mimeType: "video/mp4", buffer: big });
    await alert(page).getByText("“long film.mp4” is too large to upload.").waitFor();
    expect(await textOf(alert(page))).toContain("The video is larger than 2 MiB.");
    // Far over the limit, the gateway refuses it by its Content-Length, before reading it, naming the limit.
    const huge = Buffer.concat([video, Buffer.alloc(MAX_UPLOAD_BYTES * 3)]);
    await sendFile(page, { name: "longer film.mp4", mimeType: "video/mp4", buffer: huge });
    await alert(page).getByText("“longer film.mp4” is too large to upload.").waitFor();
    expect(await textOf(alert(page))).toContain("the largest video accepted is 2 MiB");
    await expect(page.getByText("Nothing here yet").isVisible()).resolves.toBe(true);
  });

  test("a token and a refresh token the API refuses (401) send the person back to the login form", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    await page.evaluate(() => {
      const saved = JSON.parse(localStorage.getItem("m3dio.session")!);
      const refreshToken = "A".repeat(43); // well formed, never given out
      localStorage.setItem("m3dio.session", JSON.stringify({ ...saved, token: "aaa.bbb.ccc", refreshToken }));
    });
    await page.reload();
    await alert(page).getByText("Your session has ended. Please log in again.").waitFor();
    await expect(page.getByRole("button", { name: "Log in" }).isVisible()).resolves.toBe(true);
    expect(await page.evaluate(() => localStorage.getItem("m3dio.session"))).toBeNull();
  });
});

// ── links (POST /jobs {url}): the page's side of the documented contract ────
describe("links", () => {
  test("a pasted link is sent as {url}; a refused one shows why; its download phase is shown live", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    // The gateway's answers are scripted here, so this test pins the page, not the link feature itself.
    const id = "0123456789abcdef01234567";
    const url = "https://videos.example.com/talk.mp4";
    const view = (over: Record<string, unknown>) => ({
      id,
      status: "queued",
      phase: "downloading",
      progress: 0,
      source: { kind: "url", filename: "talk.mp4", url, bytes: 0, contentType: "video/mp4" },
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      links: {},
      ...over,
    });
    const sent: unknown[] = [];
    await page.route(`${base}/jobs`, async (route) => {
      const request = route.request();
      if (request.method() !== "POST") return route.fallback();
      expect(request.headers()["content-type"]).toBe("application/json");
      expect(request.headers().authorization).toStartWith("Bearer ");
      const body = request.postDataJSON() as { url: string };
      sent.push(body);
      if (body.url.startsWith("https://localhost")) {
        return route.fulfill({
          status: 422,
          contentType: "application/problem+json",
          body: JSON.stringify({
            type: "about:blank",
            title: "Unprocessable Content",
            status: 422,
            detail: "links to private addresses are not allowed",
          }),
        });
      }
      return route.fulfill({ status: 202, contentType: "application/json", body: JSON.stringify(view({})) });
    });
    let release!: () => void;
    const finish = new Promise<void>((resolve) => (release = resolve));
    let streams = 0;
    const event = (data: unknown) => `event: status\ndata: ${JSON.stringify(data)}\n\n`;
    await page.route(`${base}/jobs/${id}/events`, async (route) => {
      if (++streams > 1) await finish; // the second stream waits until the test has seen the first
      await route.fulfill({
        status: 200,
        contentType: "text/event-stream",
        body:
          streams === 1
            ? event(view({ progress: 35 }))
            : event(
                view({ status: "failed", phase: undefined, progress: 35, error: "the link answered 404 Not Found" }),
              ),
      });
    });
    await page.route(`${base}/jobs/${id}`, (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(view({ progress: 35 })) }),
    );

    await page.getByLabel("Or paste a link to a video").fill("https://localhost/secret.mp4");
    await page.getByRole("button", { name: "Convert link" }).click();
    await alert(page).getByText("That link can't be used.").waitFor();
    expect(await textOf(alert(page))).toContain("Links to private addresses are not allowed.");

    await page.getByLabel("Or paste a link to a video").fill(url);
    await page.getByRole("button", { name: "Convert link" }).click();
    await page.getByText("The link is added.").waitFor();
    expect(sent).toEqual([{ url: "https://localhost/secret.mp4" }, { url }]);
    const item = jobItem(page, "talk.mp4");
    await item.getByText("Downloading 35%", { exact: true }).waitFor();
    expect(await textOf(item)).toContain("videos.example.com");
    release();
    await item.getByText("Could not convert: the link answered 404 Not Found").waitFor();
    expect(await page.getByLabel("Or paste a link to a video").inputValue()).toBe("");
  });
});
