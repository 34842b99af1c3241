// The web page in headless Chromium against the real stack: auth on a local port,
// the gateway listening on 127.0.0.1 (so the browser can load it), an in-process
// converter with real ffmpeg, real RabbitMQ (a vhost of its own), MariaDB and
// MongoDB (MONGODB_URL or the stand-in). Each test is one person's visit, checked
// by what the page shows. Screenshots land in test-artifacts/.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { AuthConfig, createAuth } from "../auth.ts";
import { ConverterConfig, createConverter } from "../converter.ts";
import { GatewayConfig, createGateway } from "../gateway.ts";
import { jwksVerifier } from "../lib/bearer.ts";
import { parseConfig } from "../lib/config.ts";
import { jobStore } from "../lib/jobs.ts";
import { createLogger } from "../lib/log.ts";
import { connectMongo, type Mongo } from "../lib/mongo.ts";
import { connectQueue, type Queue } from "../lib/queue.ts";
import { ApiError, SseParser, describeError } from "../web/api.ts";
import { webPage } from "../web/serve.ts";
import { launchBrowser, openPage, type TestPage } from "./support/browser.ts";
import { makeVideo, probe } from "./support/media.ts";
import { dropTestDatabase, testMongoUrl } from "./support/mongo.ts";
import { createTestDatabase, type TestDatabase } from "./support/mysql.ts";
import { createTestVhost } from "./support/rabbit.ts";

const ARTIFACTS = join(import.meta.dir, "..", "test-artifacts");
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const VIDEO_SECONDS = 3;
const log = createLogger("web-test", "silent");
const tmp = mkdtempSync(join(tmpdir(), "m3dio-web-test-"));
// A browser, real conversions and argon2 logins: more than bun's 5 s default (bunfig's `timeout` is not applied).
setDefaultTimeout(60_000);

let database: TestDatabase;
let auth: Awaited<ReturnType<typeof createAuth>>;
let mongo: Mongo;
let mongoUrl: string;
let vhost: Awaited<ReturnType<typeof createTestVhost>>;
let gatewayQueue: Queue;
let converterQueue: Queue;
let gateway: ReturnType<typeof createGateway>;
let converter: ReturnType<typeof createConverter>;
let browser: Browser;
let base: string;
let video: Buffer;
const pages: TestPage[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  database = await createTestDatabase();
  auth = await createAuth({ config: parseConfig(AuthConfig, { MYSQL_URL: database.url, LOG_LEVEL: "silent" }) });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const authBase = `http://127.0.0.1:${auth.app.server!.port}`;
  mongoUrl = await testMongoUrl();
  mongo = await connectMongo(mongoUrl);
  vhost = await createTestVhost();
  gatewayQueue = await connectQueue(vhost.url, log);
  converterQueue = await connectQueue(vhost.url, log);
  const config = parseConfig(GatewayConfig, { AUTH_URL: authBase, MONGODB_URL: mongoUrl, AMQP_URL: vhost.url, MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) });
  gateway = createGateway({ config, log, mongo, queue: gatewayQueue, verifier: jwksVerifier(`${authBase}/.well-known/jwks.json`) });
  // A no-op once gateway.ts mounts the page itself: Elysia keeps one copy of a named plugin.
  gateway.app.use(webPage());
  gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `http://127.0.0.1:${gateway.app.server!.port}`;
  converter = createConverter({
    config: parseConfig(ConverterConfig, { MONGODB_URL: mongoUrl, AMQP_URL: vhost.url, TMP_DIR: tmp, LOG_LEVEL: "silent" }),
    log,
    mongo,
    queue: converterQueue,
  });
  await converter.start();
  video = readFileSync(await makeVideo({ seconds: VIDEO_SECONDS }));
  browser = await launchBrowser();
});

// Each test's pages go when it ends, so no stream or poll of one test runs into the next.
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});

afterAll(async () => {
  await browser?.close();
  await converter?.stop(5000);
  await gateway?.app.stop(true);
  await converterQueue?.close();
  await gatewayQueue?.close();
  await vhost?.drop();
  await mongo?.close();
  if (mongoUrl) await dropTestDatabase(mongoUrl);
  await auth?.app.stop(true);
  await auth?.close();
  await database?.drop();
  rmSync(tmp, { recursive: true, force: true });
});

// ── helpers ─────────────────────────────────────────────────────────────────
let userCounter = 0;
const PASSWORD = "a good long password";
const newEmail = () => `web${++userCounter}.${Date.now()}@example.com`;

async function visit(options: Parameters<typeof openPage>[2] = {}): Promise<TestPage> {
  const opened = await openPage(browser, base, options);
  pages.push(opened);
  return opened;
}

/** Registers through the API (for tests about something else than registering). */
async function registerByApi(email = newEmail()) {
  const response = await fetch(`${base}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }) });
  expect(response.status).toBe(201);
  const login = await fetch(`${base}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }) });
  const { token } = (await login.json()) as { token: string };
  const userId = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).sub as string;
  return { email, token, userId };
}

async function logIn(page: Page, email: string, password = PASSWORD) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

async function loggedIn(page: Page, email: string) {
  await page.getByText(`Logged in as ${email}`).waitFor();
  await page.getByRole("heading", { name: "Convert a video to MP3" }).waitFor();
}

/** Picks a file the way a person does: the button opens the file chooser. */
async function chooseFile(page: Page, file: { name: string; mimeType: string; buffer: Buffer }) {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByRole("button", { name: "Choose a video" }).click()]);
  await chooser.setFiles(file);
}

const jobItem = (page: Page, name: string) => page.getByRole("listitem").filter({ has: page.getByRole("heading", { name, exact: true }) });
const alert = (page: Page) => page.getByRole("alert");
const textOf = async (locator: Locator) => (await locator.innerText()).replace(/\s+/g, " ").trim();

/** The job's player, once it is shown and knows the MP3's duration. */
async function audioReady(page: Page, item: Locator) {
  const audio = item.getByLabel(/^MP3 of /);
  await audio.waitFor();
  await page.waitForFunction((element) => (element as HTMLAudioElement).readyState >= 1, await audio.elementHandle());
  return audio;
}

/** Records every text the job's status badge shows, to prove it changed live on one page load. */
async function recordBadges(page: Page) {
  await page.evaluate(() => {
    const seen: string[] = ((window as unknown as { badgeLog: string[] }).badgeLog = []);
    const note = () => {
      for (const badge of document.querySelectorAll(".badge")) if (seen.at(-1) !== badge.textContent) seen.push(badge.textContent ?? "");
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  return () => page.evaluate(() => (window as unknown as { badgeLog: string[] }).badgeLog);
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
    await expect(page.getByLabel("Email").isVisible()).resolves.toBe(true);
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
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await loggedIn(page, email);
    await page.getByText("Your account is ready.").waitFor();
    await page.getByText("Nothing here yet").waitFor();

    // Log out, then log back in.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByText("You have logged out.").waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await logIn(page, email);
    await loggedIn(page, email);

    // Upload with the file chooser and follow it live on this one page load.
    const streams: { url: string; authorization?: string }[] = [];
    page.on("request", (request) => request.url().endsWith("/events") && streams.push({ url: request.url(), authorization: request.headers().authorization }));
    const badges = await recordBadges(page);
    // A slow uplink (16 KiB/s) so the upload's progress can be seen.
    const devtools = await page.context().newCDPSession(page);
    const uplink = (bytesPerSecond: number) =>
      devtools.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
    await devtools.send("Network.enable");
    await uplink(16 * 1024);
    await chooseFile(page, { name, mimeType: "video/mp4", buffer: video });
    const uploading = page.getByRole("progressbar", { name: new RegExp(`^Uploading ${RegExp.escape(name)}: [1-9]\\d?% of \\d+ KB$`) });
    await uploading.waitFor();
    expect(await uploading.evaluate((bar: HTMLProgressElement) => bar.value)).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, "web-uploading.png") });
    await uplink(-1);
    await page.getByText(`${name} is uploaded.`).waitFor();
    await expect(uploading.isVisible()).resolves.toBe(false);
    const item = jobItem(page, name);
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    // Told to screen readers too, through a live region.
    expect(await page.locator("[aria-live]").filter({ hasText: `${name}: converted, ready to play or download.` }).count()).toBe(1);
    const seen = await badges();
    expect(seen[0]).toBe("Queued");
    expect(seen.at(-1)).toBe("Done");
    expect(streams.length).toBeGreaterThanOrEqual(1);
    expect(streams[0]!.authorization).toStartWith("Bearer ");
    expect(await textOf(item)).toMatch(new RegExp(`MP3 0:0${VIDEO_SECONDS}, [\\d.]+ KB · [\\d.]+ KB video`));
    await expect(item.getByRole("progressbar").isVisible()).resolves.toBe(false);

    // Play: the <audio> element plays a blob: URL of the MP3, as long as the video.
    await item.getByRole("button", { name: "Play" }).click();
    const audio = await audioReady(page, item);
    const { src, seconds } = await audio.evaluate((element: HTMLAudioElement) => ({ src: element.src, seconds: element.duration }));
    expect(src).toStartWith("blob:");
    expect(Math.abs(seconds - VIDEO_SECONDS)).toBeLessThan(0.5);
    await page.screenshot({ path: join(ARTIFACTS, "web-finished.png"), fullPage: true });

    // Download: an MP3 named after the video.
    const [download] = await Promise.all([page.waitForEvent("download"), item.getByRole("button", { name: "Download MP3" }).click()]);
    expect(download.suggestedFilename()).toBe(mp3Name);
    const saved = join(tmp, "downloaded.mp3");
    await download.saveAs(saved);
    const mp3 = await probe(saved);
    expect(mp3.format).toBe("mp3");
    expect(mp3.streams).toEqual(["audio:mp3"]);
    expect(Math.abs(mp3.durationSec - VIDEO_SECONDS)).toBeLessThan(0.5);
    await page.getByText(`Downloading ${mp3Name}.`).waitFor();

    // Delete asks once more, then the job is gone from the page and from the server.
    const jobId = await item.getAttribute("data-id");
    await item.getByRole("button", { name: "Delete" }).click();
    await item.getByRole("button", { name: "Confirm delete" }).click();
    await item.waitFor({ state: "detached" });
    await page.getByText(`Deleted ${name}.`).waitFor();
    await page.getByText("Nothing here yet").waitFor();
    expect(await mongo.db.collection("jobs").countDocuments({ _id: new (await import("mongodb")).ObjectId(jobId!) })).toBe(0);
    expect(errors).toEqual([]);
  });

  test("on a phone-sized screen, a finished job fits the width and its buttons can be tapped", async () => {
    const { page, errors } = await visit({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const { email } = await registerByApi();
    await logIn(page, email);
    await loggedIn(page, email);
    const name = "A rather long name for a phone screen, from the summer trip.mp4";
    await chooseFile(page, { name, mimeType: "video/mp4", buffer: video });
    const item = jobItem(page, name);
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    await item.getByRole("button", { name: "Play" }).tap();
    await audioReady(page, item);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    for (const button of [item.getByRole("button", { name: "Download MP3" }), item.getByRole("button", { name: "Delete" }), page.getByRole("button", { name: "Log out" })]) {
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
    const job = await jobs.create({ userId, email, source: { kind: "upload", filename: "lecture.mkv", bytes: 12_345_678, contentType: "video/x-matroska" } });
    const { page, errors } = await visit();
    await logIn(page, email);
    const item = jobItem(page, "lecture.mkv");
    await item.getByText("Queued", { exact: true }).waitFor();
    expect(await textOf(item)).toContain("12 MB video");
    await jobs.startConverting(job._id);
    await jobs.setProgress(job._id, 40);
    await item.getByText("Converting 40%", { exact: true }).waitFor();
    expect(await item.getByRole("progressbar", { name: "Progress of lecture.mkv" }).evaluate((bar: HTMLProgressElement) => bar.value)).toBe(40);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(ARTIFACTS, "web-progress-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    await jobs.markFailed(job._id, "the video has no audio track");
    await item.getByText("Failed", { exact: true }).waitFor();
    await item.getByText("Could not convert: the video has no audio track").waitFor();
    expect(await page.locator("[aria-live]").filter({ hasText: "lecture.mkv: could not be converted." }).count()).toBe(1);
    await expect(item.getByRole("button", { name: "Play" }).isVisible()).resolves.toBe(false);
    await expect(item.getByRole("button", { name: "Delete" }).isVisible()).resolves.toBe(true);
    expect(errors).toEqual([]);
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
    expect(await page.getByLabel("Password").evaluate((input) => input === document.activeElement)).toBe(true);
    let status = 0;
    for (let attempt = 0; attempt < 6 && status !== 429; attempt++) {
      const [answer] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/auth/login")), page.getByRole("button", { name: "Log in" }).click()]);
      status = answer.status();
    }
    expect(status).toBe(429);
    const message = await textOf(alert(page));
    expect(message).toMatch(/^Too many attempts\. Please wait 1[45] minutes before trying again\. Too many failed logins for this account; try again later\.$/);
  });

  test("registering twice or with a short password says what is wrong", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await alert(page).getByText("An account with this email already exists.").waitFor();
    await page.getByLabel("Email").fill(newEmail());
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Create account" }).click();
    await alert(page).getByText("Please check your email and password.").waitFor();
    // auth's own wording for the rule, or the validator's
    expect(await textOf(alert(page))).toMatch(/Password: (must be 8 to 256 characters|expected string length greater or equal to 8)\./);
  });

  test("a text file shows the 415 message and adds no job", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    await chooseFile(page, { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("just some text, not a video\n".repeat(200)) });
    await alert(page).getByText("“notes.txt” isn't a video we can convert.").waitFor();
    expect(await textOf(alert(page))).toContain("The file is not a video: send an MP4, MOV, MKV, WebM, AVI, MPEG-TS or FLV video.");
    await page.screenshot({ path: join(ARTIFACTS, "web-upload-error.png") });
    await expect(page.getByText("Nothing here yet").isVisible()).resolves.toBe(true);
    await expect(page.getByRole("listitem").count()).resolves.toBe(0);
  });

  test("a video over the size limit shows the 413 message", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    // A real video's first bytes (so it passes as a video), padded past the limit.
    const big = Buffer.concat([video, Buffer.alloc(MAX_UPLOAD_BYTES + 100_000 - video.length)]);
    await chooseFile(page, { name: "long film.mp4", mimeType: "video/mp4", buffer: big });
    await alert(page).getByText("“long film.mp4” is too large to upload.").waitFor();
    expect(await textOf(alert(page))).toContain("The video is larger than 2 MiB.");
    // Far over the limit, the HTTP server itself refuses the body (a 413 without a problem document).
    const huge = Buffer.concat([video, Buffer.alloc(MAX_UPLOAD_BYTES * 3)]);
    await chooseFile(page, { name: "longer film.mp4", mimeType: "video/mp4", buffer: huge });
    await alert(page).getByText("“longer film.mp4” is too large to upload.").waitFor();
    await expect(page.getByText("Nothing here yet").isVisible()).resolves.toBe(true);
  });

  test("a token the API refuses (401) sends the person back to the login form", async () => {
    const { email } = await registerByApi();
    const { page } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    await page.evaluate(() => {
      const saved = JSON.parse(sessionStorage.getItem("m3dio.session")!);
      sessionStorage.setItem("m3dio.session", JSON.stringify({ ...saved, token: "aaa.bbb.ccc" }));
    });
    await page.reload();
    await alert(page).getByText("Your session has ended. Please log in again.").waitFor();
    await expect(page.getByRole("button", { name: "Log in" }).isVisible()).resolves.toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem("m3dio.session"))).toBeNull();
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
      id, status: "queued", phase: "downloading", progress: 0,
      source: { kind: "url", filename: "talk.mp4", url, bytes: 0, contentType: "video/mp4" },
      createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), links: {}, ...over,
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
        return route.fulfill({ status: 422, contentType: "application/problem+json", body: JSON.stringify({ type: "about:blank", title: "Unprocessable Content", status: 422, detail: "links to private addresses are not allowed" }) });
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
        body: streams === 1 ? event(view({ progress: 35 })) : event(view({ status: "failed", phase: undefined, progress: 35, error: "the link answered 404 Not Found" })),
      });
    });
    await page.route(`${base}/jobs/${id}`, (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(view({ progress: 35 })) }));

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

// ── the small pure parts ─────────────────────────────────────────────────────
describe("the page's API client", () => {
  test("the event-stream parser survives chunks split anywhere, CRLF, comments and multi-line data", () => {
    const stream = ': keep-alive\r\nevent: status\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: deleted\ndata: {"id":"x"}\n\ndata: plain\n\n';
    for (const size of [1, 2, 3, 7, stream.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < stream.length; i += size) events.push(...parser.push(stream.slice(i, i + size)));
      expect(events).toEqual([
        { event: "status", id: "7", data: '{"a":\n1}' },
        { event: "deleted", id: "7", data: '{"id":"x"}' },
        { event: "message", id: "7", data: "plain" },
      ]);
    }
  });

  test("every error the API gives is worded for a person, with the API's detail", () => {
    const problem = (status: number, detail?: string, retryAfter?: number) => new ApiError(status, { status, detail }, retryAfter);
    expect(describeError(problem(0), "upload")).toEqual({ title: "Can't reach m3dio.", detail: "Check your connection and try again." });
    expect(describeError(problem(401, "wrong email or password"), "login")).toEqual({ title: "Wrong email or password." });
    expect(describeError(problem(413, "the video is larger than 2 GiB"), "upload", "a.mp4")).toEqual({ title: "“a.mp4” is too large to upload.", detail: "The video is larger than 2 GiB." });
    expect(describeError(problem(415, "the file is not a video"), "upload", "a.txt").title).toBe("“a.txt” isn't a video we can convert.");
    expect(describeError(problem(422, "bad url"), "link")).toEqual({ title: "That link can't be used.", detail: "Bad url." });
    expect(describeError(problem(429, "slow down", 900), "login").title).toBe("Too many attempts. Please wait 15 minutes before trying again.");
    expect(describeError(problem(503, "storage is briefly unavailable; try again shortly", 5), "upload")).toEqual({
      title: "m3dio is briefly unavailable. Please try again in 5 seconds.",
      detail: "Storage is briefly unavailable; try again shortly.",
    });
    expect(describeError(problem(500), "job").title).toBe("Something went wrong on our side. Please try again.");
  });
});
