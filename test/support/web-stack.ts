// The stack the web page tests drive, in one process but for the browser: auth on a
// local port, the gateway listening on 127.0.0.1 (so Chromium can load the page; it is
// also PUBLIC_URL, so emailed and shared links lead back to it), an in-process converter
// with real ffmpeg, the notifier sending through the local Resend stand-in, real RabbitMQ
// (a vhost of its own), MariaDB and MongoDB (MONGODB_URL or the stand-in); and the small
// steps a person takes on the page (log in, choose and send a file, find a job), for
// test/web*.test.ts.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { createAuth } from "../../auth.ts";
import { ConverterConfig, createConverter } from "../../converter.ts";
import { jwksVerifier } from "../../gateway/bearer.ts";
import { createGateway, GatewayConfig } from "../../gateway.ts";
import { parseConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo, type Mongo } from "../../lib/mongo.ts";
import { connectQueue, type Queue } from "../../lib/queue.ts";
import { createNotifier, NotifierConfig } from "../../notifier.ts";
import { authTestConfig } from "./auth.ts";
import { launchBrowser } from "./browser.ts";
import { makeVideo } from "./media.ts";
import { dropTestDatabase, testMongoUrl } from "./mongo.ts";
import { createTestDatabase } from "./mysql.ts";
import { createTestVhost } from "./rabbit.ts";
import { type ReceivedEmail, startResendStandin } from "./resend.ts";

const LINK_SIGNING_KEY = "web-test-link-signing-key-0123456789abcdef";

export interface WebStack {
  /** The gateway's address, where the page is. */
  base: string;
  browser: Browser;
  mongo: Mongo;
  /** A short MP4 with audio, `videoSeconds` long. */
  video: Buffer;
  /** A temp directory of the test's own (downloads), removed by stop(). */
  tmp: string;
  /** Every email the notifier sent through the Resend stand-in, in order. */
  emails: ReceivedEmail[];
}

/**
 * The stack, to start in beforeAll and stop in afterAll. `stop()` takes down whatever
 * was started, also after a failed or timed-out `start()`, and then reports every step
 * that failed.
 */
export function webStack({
  maxUploadBytes,
  videoSeconds,
  userStorageBytes,
  urlAllowHosts,
}: {
  maxUploadBytes: number;
  videoSeconds: number;
  /** USER_STORAGE_BYTES of the gateway and converter (their default unless given) */
  userStorageBytes?: number;
  /** URL_ALLOW_HOSTS of the gateway and notifier: "127.0.0.1" lets a webhook reach a local receiver */
  urlAllowHosts?: string;
}) {
  const storage = userStorageBytes ? { USER_STORAGE_BYTES: String(userStorageBytes) } : {};
  const allowHosts = urlAllowHosts ? { URL_ALLOW_HOSTS: urlAllowHosts } : {};
  const log = createLogger("web-test", "silent");
  const stops: (() => Promise<unknown> | unknown)[] = [];

  async function start(): Promise<WebStack> {
    const tmp = mkdtempSync(join(tmpdir(), "m3dio-web-test-"));
    stops.push(() => rmSync(tmp, { recursive: true, force: true }));
    const database = await createTestDatabase();
    stops.push(() => database.drop());
    const vhost = await createTestVhost();
    stops.push(() => vhost.drop());
    // auth publishes its emails and deletions to the stack's vhost (it connects there itself).
    const auth = await createAuth({ config: authTestConfig(database.url, { AMQP_URL: vhost.url }) });
    stops.push(
      () => auth.close(),
      () => auth.app.stop(true),
    );
    auth.app.listen({ port: 0, hostname: "127.0.0.1" });
    const authBase = `http://127.0.0.1:${auth.app.server!.port}`;
    const mongoUrl = await testMongoUrl();
    stops.push(() => dropTestDatabase(mongoUrl));
    const mongo = await connectMongo(mongoUrl);
    stops.push(() => mongo.close());
    const queues = await Promise.all([0, 1, 2].map(() => connectQueue(vhost.url, log)));
    stops.push(() => Promise.all(queues.map((queue) => queue.close())));
    const [gatewayQueue, converterQueue, notifierQueue] = queues as [Queue, Queue, Queue];
    // The gateway's address is PUBLIC_URL (links in emails, shared links): a free port, chosen first.
    const base = `http://127.0.0.1:${freePort()}`;
    const config = parseConfig(GatewayConfig, {
      AUTH_URL: authBase,
      MONGODB_URL: mongoUrl,
      AMQP_URL: vhost.url,
      MAX_UPLOAD_BYTES: String(maxUploadBytes),
      PUBLIC_URL: base,
      LINK_SIGNING_KEY,
      ...storage,
      ...allowHosts,
    });
    const gateway = createGateway({
      config,
      log,
      mongo,
      queue: gatewayQueue,
      verifier: jwksVerifier(`${authBase}/.well-known/jwks.json`),
    });
    await gateway.start();
    gateway.app.listen({ port: Number(new URL(base).port), hostname: "127.0.0.1" });
    stops.push(
      () => gateway.app.stop(true),
      () => gateway.stop(),
    );
    const converter = createConverter({
      config: parseConfig(ConverterConfig, {
        MONGODB_URL: mongoUrl,
        AMQP_URL: vhost.url,
        TMP_DIR: tmp,
        LOG_LEVEL: "silent",
        SHUTDOWN_GRACE_MS: "5000",
        ...storage,
      }),
      log,
      mongo,
      queue: converterQueue,
    });
    stops.push(() => converter.stop());
    await converter.start();
    const emails = await startNotifier({ mongo, mongoUrl, amqpUrl: vhost.url, queue: notifierQueue, base });
    const video = readFileSync(await makeVideo({ seconds: videoSeconds }));
    const browser = await launchBrowser();
    stops.push(() => browser.close());
    return { base, browser, mongo, video, tmp, emails };
  }

  /** The notifier, sending through a local Resend stand-in; answers what the stand-in receives. */
  async function startNotifier(place: { mongo: Mongo; mongoUrl: string; amqpUrl: string; queue: Queue; base: string }) {
    const resend = startResendStandin();
    stops.push(() => resend.stop());
    const config = parseConfig(NotifierConfig, {
      MONGODB_URL: place.mongoUrl,
      AMQP_URL: place.amqpUrl,
      PUBLIC_URL: place.base,
      LINK_SIGNING_KEY,
      RESEND_API_KEY: "re_test_key",
      RESEND_BASE_URL: resend.url,
      ...allowHosts,
    });
    const notifier = createNotifier({ config, log, mongo: place.mongo, queue: place.queue });
    await notifier.start();
    stops.push(() => notifier.stop());
    return resend.received;
  }

  /** Undoes what start() did, newest first; every step is tried, then the failures are thrown together. */
  async function stop(): Promise<void> {
    const failures: unknown[] = [];
    for (const step of stops.splice(0).reverse())
      await Promise.resolve()
        .then(step)
        .catch((error: unknown) => failures.push(error));
    if (failures.length) throw new AggregateError(failures, `web stack: ${failures.length} teardown step(s) failed`);
  }

  return { start, stop };
}

/** A port nothing listens on now (asked of the system, then let go). */
function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}

// ── a person's steps on the page ────────────────────────────────────────────
export const PASSWORD = "a good long password";

/** The login view's form (the registration view has its own). */
export const loginForm = (page: Page) => page.getByRole("form", { name: "Log in" });
export const registerForm = (page: Page) => page.getByRole("form", { name: "Create an account" });

export async function logIn(page: Page, email: string, password = PASSWORD) {
  const form = loginForm(page);
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("Password", { exact: true }).fill(password);
  await form.getByRole("button", { name: "Log in" }).click();
}

/** Opens the registration view and creates the account there. */
export async function register(page: Page, email: string, password = PASSWORD) {
  await page.getByRole("button", { name: "Create an account" }).click();
  const form = registerForm(page);
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("Password", { exact: true }).fill(password);
  await form.getByRole("button", { name: "Create account" }).click();
}

export async function loggedIn(page: Page, email: string) {
  await page.getByText(`Logged in as ${email}`).waitFor();
  await page.getByRole("heading", { name: "Convert to MP3" }).waitFor();
}

export interface FileToSend {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

/** Picks files the way a person does: the button opens the file chooser; they wait under "Ready to convert". */
export async function chooseFile(page: Page, ...files: FileToSend[]) {
  const [chooser] = await Promise.all([
    page.waitForEvent("filechooser"),
    page.getByRole("button", { name: "Choose files" }).click(),
  ]);
  await chooser.setFiles(files);
}

/** Sends the files waiting under "Ready to convert". */
export const convertChosen = (page: Page) => page.getByRole("button", { name: /^Convert \d+ files?$/ }).click();

/** Chooses a file and sends it as it is (the shared options). */
export async function sendFile(page: Page, file: FileToSend) {
  await chooseFile(page, file);
  await convertChosen(page);
}

/** A file waiting under "Ready to convert". */
export const stagedItem = (page: Page, name: string) =>
  page
    .getByRole("region", { name: /^Ready to convert/ })
    .getByRole("listitem")
    .filter({ has: page.getByRole("heading", { name, exact: true }) });
/** The job list's entries, and one job's by its file's name. */
export const jobItems = (page: Page) => page.getByRole("region", { name: "Your conversions" }).getByRole("listitem");
export const jobItem = (page: Page, name: string) =>
  jobItems(page).filter({ has: page.getByRole("heading", { name, exact: true }) });
export const alert = (page: Page) => page.getByRole("alert");
// biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText, the text as rendered (what a person reads)
export const textOf = async (locator: Locator) => (await locator.innerText()).replace(/\s+/g, " ").trim();

/** The job's player, once it is shown and knows the MP3's duration. */
export async function audioReady(page: Page, item: Locator) {
  const audio = item.getByLabel(/^MP3 of /);
  await audio.waitFor();
  await page.waitForFunction((element) => (element as HTMLAudioElement).readyState >= 1, await audio.elementHandle());
  return audio;
}

/** Records every text the job's status badge shows, to prove it changed live on one page load. */
export async function recordBadges(page: Page) {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { badgeLog: string[] }).badgeLog = seen;
    const note = () => {
      for (const badge of document.querySelectorAll(".badge"))
        if (seen.at(-1) !== badge.textContent) seen.push(badge.textContent ?? "");
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  return () => page.evaluate(() => (window as unknown as { badgeLog: string[] }).badgeLog);
}

/**
 * The link in the `nth` (1: the first) email of `kind` sent to `to`, once the notifier has
 * sent it: `PUBLIC_URL/verify?token=…` or `PUBLIC_URL/reset?token=…`, from its text part.
 */
export async function emailedLink(emails: ReceivedEmail[], to: string, kind: "verify" | "reset", nth = 1) {
  const pattern = new RegExp(`https?://\\S+/${kind}\\?token=[\\w-]+`);
  const sent = () => emails.filter((email) => [email.to].flat().includes(to) && pattern.test(email.text));
  for (let waited = 0; sent().length < nth; waited += 25) {
    if (waited > 30_000) throw new Error(`no ${kind} email #${nth} to ${to}`);
    await Bun.sleep(25);
  }
  return pattern.exec(sent()[nth - 1]!.text)![0];
}
