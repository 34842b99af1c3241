// The page's conversion options in headless Chromium against the real stack
// (test/support/web-stack.ts): a preset, a trim and tags set on a chosen file, several files
// sharing the options, a queued job's place in line, the phone layout and the two auth
// views, each checked by what the page shows and by the job the API answers. Screenshots
// at 1280×800 and 390×844 land in test-artifacts/.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { jobStore } from "../lib/jobs.ts";
import type { Mongo } from "../lib/mongo.ts";
import { OPTION_FIELDS } from "../lib/options.ts";
import { openPage, type TestPage } from "./support/browser.ts";
import { gatewayClient, type User } from "./support/client.ts";
import {
  audioReady,
  chooseFile,
  convertChosen,
  jobItem,
  loggedIn,
  logIn,
  loginForm,
  PASSWORD,
  registerForm,
  sendFile,
  stagedItem,
  textOf,
  webStack,
} from "./support/web-stack.ts";

const ARTIFACTS = join(import.meta.dir, "..", "test-artifacts");
const VIDEO_SECONDS = 6;
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
setDefaultTimeout(60_000);

const stack = webStack({ maxUploadBytes: 8 * 1024 * 1024, videoSeconds: VIDEO_SECONDS });
let browser: Browser;
let base: string;
let mongo: Mongo;
let video: Buffer;
const pages: TestPage[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ({ browser, base, mongo, video } = await stack.start());
});
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});
afterAll(() => stack.stop());

/** A new account, logged in on a fresh page of the given size. */
async function visitAs(options: Parameters<typeof openPage>[2]): Promise<TestPage & { user: User }> {
  const user = await gatewayClient(base).newUser("web-options", PASSWORD);
  const opened = await openPage(browser, base, options);
  pages.push(opened);
  await logIn(opened.page, user.email);
  await loggedIn(opened.page, user.email);
  return { ...opened, user };
}

const mp4 = (name: string) => ({ name, mimeType: "video/mp4", buffer: video });
const jobOf = (user: User, page: Page, name: string) =>
  jobItem(page, name)
    .getAttribute("data-id")
    .then((id) => gatewayClient(base).job(user, id!));
/** Records the fields of every upload the page sends (names and text; a file by its name). */
async function recordUploads(page: Page) {
  await page.evaluate(() => {
    const sent: [string, string][][] = [];
    (window as unknown as { uploads: typeof sent }).uploads = sent;
    const send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.send = function (body) {
      if (body instanceof FormData)
        sent.push(
          [...body.entries()].map(([field, value]) => [
            field,
            typeof value === "string" ? value : (value as File).name,
          ]),
        );
      return send.call(this, body);
    };
  });
  return () => page.evaluate(() => (window as unknown as { uploads: [string, string][][] }).uploads.flat());
}

const done = (page: Page, name: string) =>
  jobItem(page, name).getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });

describe("conversion options", () => {
  test("a preset is sent as its fields; the job shows them, its cover and a player (1280×800)", async () => {
    const { page, errors, user } = await visitAs(DESKTOP);
    await page.getByRole("radio", { name: "Podcast (mono, 64 kbit/s, normalized)" }).check();
    // Under "Advanced", the preset's fields are set.
    await page.getByText("Advanced", { exact: true }).click();
    const advanced = page.locator("#advanced");
    expect(await advanced.getByLabel("Constant bitrate").inputValue()).toBe("64");
    expect(await advanced.getByLabel("Channels").inputValue()).toBe("1");
    expect(await advanced.getByLabel("Normalize loudness").isChecked()).toBe(true);
    const name = "Episode 12.mp4";
    const sent = await recordUploads(page);
    await sendFile(page, mp4(name));
    await done(page, name);
    // Multipart fields named as in lib/options.ts, before the file.
    expect(await sent()).toEqual([
      ["bitrate", "64"],
      ["channels", "1"],
      ["normalize", "true"],
      ["title", "Episode 12"], // prefilled from the file's name
      ["file", name],
    ]);
    const item = jobItem(page, name);
    expect(await textOf(item)).toContain("64 kbit/s, mono, normalized");
    const job = await jobOf(user, page, name);
    expect(job.options).toMatchObject({ bitrate: 64, channels: 1, normalize: true });
    expect(job.options.quality).toBeUndefined();
    // The cover the converter took from the video, fetched with the token.
    const cover = item.getByRole("img", { name: `Cover of ${name}` });
    await cover.waitFor();
    expect(await cover.evaluate((img: HTMLImageElement) => [img.src.slice(0, 5), img.naturalWidth > 0])).toEqual([
      "blob:",
      true,
    ]);
    await item.getByRole("button", { name: "Play" }).click();
    await audioReady(page, item);
    await page.screenshot({ path: join(ARTIFACTS, "web-options-desktop.png") });
    expect(errors).toEqual([]);
  });

  test("a trim set on the file's timeline and its tags, prefilled from its name, go with the upload", async () => {
    const { page, errors, user } = await visitAs(DESKTOP);
    // Every field of the model has its control under "Advanced".
    const advanced = page.locator("#advanced");
    for (const field of OPTION_FIELDS) expect(await advanced.locator(`[name="${field}"]`).count()).toBe(1);

    const name = "Daft Punk - One More Time.mp4";
    await chooseFile(page, mp4(name));
    const file = stagedItem(page, name);
    // Its length, read in the browser before anything is sent.
    await file.getByText(`Length 0:0${VIDEO_SECONDS} · the whole of it`).waitFor();
    expect(await file.getByLabel("Title").inputValue()).toBe("One More Time");
    expect(await file.getByLabel("Artist").inputValue()).toBe("Daft Punk");
    await file.getByLabel("Start", { exact: true }).fill("0:01");
    // The end by its slider, with the keyboard: 20 steps of 0.1 s back from the end.
    const endSlider = file.getByRole("slider", { name: "End on the timeline" });
    await endSlider.focus();
    for (let step = 0; step < 20; step++) await endSlider.press("ArrowLeft");
    expect(await file.getByLabel("End", { exact: true }).inputValue()).toBe("0:04");
    await file.getByText("the MP3: 0:01 to 0:04 (0:03)").waitFor();
    await file.getByLabel("Title").fill("One More Time (radio edit)");
    await file.getByLabel("Album").fill("Discovery");
    await page.screenshot({ path: join(ARTIFACTS, "web-options-trim.png") });
    await convertChosen(page);

    await done(page, name);
    const job = await jobOf(user, page, name);
    expect(job.options).toMatchObject({
      start: 1,
      end: 4,
      title: "One More Time (radio edit)",
      artist: "Daft Punk",
      album: "Discovery",
    });
    expect(Math.abs(job.audio!.durationSec - 3)).toBeLessThan(0.3);
    const text = await textOf(jobItem(page, name));
    expect(text).toContain("MP3 0:03");
    expect(text).toContain("0:01 to 0:04 · “One More Time (radio edit)” by Daft Punk, on Discovery");
    expect(errors).toEqual([]);
  });

  test("a trim that ends before it starts is caught on the page; nothing is sent", async () => {
    const { page, errors } = await visitAs(DESKTOP);
    const sent = await recordUploads(page);
    await chooseFile(page, mp4("backwards.mp4"));
    const file = stagedItem(page, "backwards.mp4");
    await file.getByLabel("Start", { exact: true }).fill("0:05");
    await file.getByLabel("End", { exact: true }).fill("2");
    await convertChosen(page);
    const end = file.getByLabel("End", { exact: true });
    expect(await end.evaluate((input: HTMLInputElement) => input.validationMessage)).toBe(
      "The end must come after the start.",
    );
    expect(await end.evaluate((input) => input === document.activeElement)).toBe(true);
    expect(await sent()).toEqual([]);
    await expect(file.isVisible()).resolves.toBe(true); // still waiting, to be put right
    expect(errors).toEqual([]);
  });

  test("several files share the chosen options; a field changed for one file stays its own", async () => {
    const { page, errors, user } = await visitAs(DESKTOP);
    await page.getByRole("radio", { name: "Small (CBR 96)" }).check();
    await chooseFile(page, mp4("first.mp4"), mp4("second.mp4"));
    const second = stagedItem(page, "second.mp4");
    expect(await textOf(second)).toContain("Small (CBR 96)");
    await second.getByText("Trim, tags and sound").click();
    await second.getByText(/^Sound for this file/).click();
    await second.getByLabel("Constant bitrate").selectOption({ label: "128 kbit/s" });
    // The shared options change: both files follow but for the field the second changed.
    await page.getByRole("radio", { name: "Music (VBR best)" }).check();
    expect(await textOf(stagedItem(page, "first.mp4"))).toContain("Music (VBR best)");
    expect(await textOf(second)).toContain("Custom: 128 kbit/s");
    await convertChosen(page);
    await done(page, "first.mp4");
    await done(page, "second.mp4");
    const [first, other] = [await jobOf(user, page, "first.mp4"), await jobOf(user, page, "second.mp4")];
    expect(first.options).toMatchObject({ quality: 0, title: "first" });
    expect(first.options.bitrate).toBeUndefined();
    expect(other.options).toMatchObject({ bitrate: 128, title: "second" });
    expect(other.options.quality).toBeUndefined();
    expect(errors).toEqual([]);
  });

  test("a queued job says where it is in line, and moves up live", async () => {
    const { page, errors, user } = await visitAs(DESKTOP);
    const jobs = jobStore(mongo.db);
    // Jobs the converter never sees (nothing is published): they wait in line.
    const source = { kind: "upload", bytes: 1000, contentType: "video/mp4" } as const;
    const waiting = [];
    for (const filename of ["first in line.mp4", "second in line.mp4"])
      waiting.push(await jobs.create({ userId: user.id, email: user.email, source: { ...source, filename } }));
    await page.reload();
    // Every earlier test's jobs are done: these two are the whole line.
    const view = await gatewayClient(base).job(user, waiting[1]!._id.toHexString());
    expect(view.queuePosition).toBe(2);
    const second = jobItem(page, "second in line.mp4");
    await second.getByText("2nd in line", { exact: true }).waitFor();
    await jobItem(page, "first in line.mp4").getByText("Next in line", { exact: true }).waitFor();
    await jobs.startConverting(waiting[0]!._id);
    await jobs.setProgress(waiting[0]!._id, 30);
    await jobItem(page, "first in line.mp4").getByText("Converting 30%", { exact: true }).waitFor();
    await second.getByText("Next in line", { exact: true }).waitFor();
    expect(errors).toEqual([]);
  });
});

describe("on a phone", () => {
  test("compact rows: the primary action in view, the rest in a menu, no sideways scroll (390×844)", async () => {
    const { page, errors, user } = await visitAs(PHONE);
    const jobs = jobStore(mongo.db);
    const failed = await jobs.create({
      userId: user.id,
      email: user.email,
      source: { kind: "upload", filename: "broken.mp4", bytes: 1000, contentType: "video/mp4" },
    });
    await jobs.startConverting(failed._id);
    await jobs.markFailed(failed._id, "the video has no audio track");
    await page.reload();
    const name = "Sunday walk by the river, with the long name a phone has to cut.mp4";
    await sendFile(page, mp4(name));
    await done(page, name);
    const item = jobItem(page, name);
    const play = item.getByRole("button", { name: "Play" });
    const more = item.getByRole("button", { name: `More actions for ${name}` });
    const download = item.getByRole("button", { name: "Download MP3" });
    const remove = item.getByRole("button", { name: "Delete" });
    expect([await play.isVisible(), await more.isVisible()]).toEqual([true, true]);
    expect([await download.isVisible(), await remove.isVisible()]).toEqual([false, false]);
    // A failed job's primary action is Retry.
    await expect(jobItem(page, "broken.mp4").getByRole("button", { name: "Retry" }).isVisible()).resolves.toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await item.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, "web-options-phone.png") });

    await more.tap();
    expect(await more.getAttribute("aria-expanded")).toBe("true");
    for (const button of [download, remove]) {
      expect(await button.isVisible()).toBe(true);
      const box = (await button.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
      expect(box.height).toBeGreaterThanOrEqual(40);
    }
    await page.screenshot({ path: join(ARTIFACTS, "web-options-phone-menu.png") });
    // Escape closes it and gives the focus back to the button that opened it.
    await page.keyboard.press("Escape");
    expect(await download.isVisible()).toBe(false);
    expect(await more.evaluate((button) => button === document.activeElement)).toBe(true);
    const [file] = await Promise.all([page.waitForEvent("download"), more.tap().then(() => download.tap())]);
    expect(file.suggestedFilename()).toEndWith(".mp3");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(errors).toEqual([]);
  });
});

describe("logging in and registering", () => {
  test("two views; the rules up front and Show on registration; Logging in… is progress, not a success box", async () => {
    const user = await gatewayClient(base).newUser("web-auth", PASSWORD);
    const opened = await openPage(browser, base, DESKTOP);
    pages.push(opened);
    const { page, errors } = opened;
    await expect(registerForm(page).isVisible()).resolves.toBe(false);
    await page.getByRole("button", { name: "Create an account" }).click();
    const form = registerForm(page);
    await form.waitFor();
    await expect(loginForm(page).isVisible()).resolves.toBe(false);
    const password = form.getByLabel("Password", { exact: true });
    expect(await textOf(form)).toContain("8 to 256 characters.");
    expect(await password.getAttribute("autocomplete")).toBe("new-password");
    await password.fill("correct horse battery");
    await form.getByRole("button", { name: "Show password" }).click();
    expect(await password.getAttribute("type")).toBe("text");
    await form.getByRole("button", { name: "Hide password" }).click();
    expect(await password.getAttribute("type")).toBe("password");
    await page.screenshot({ path: join(ARTIFACTS, "web-options-register.png") });

    // Back to logging in, the email carried over; the login is held until the test has looked.
    await form.getByLabel("Email").fill(user.email);
    await page.getByRole("button", { name: "Log in", exact: true }).click();
    expect(await loginForm(page).getByLabel("Email").inputValue()).toBe(user.email);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route(`${base}/auth/login`, async (route) => {
      await held;
      await route.fallback();
    });
    await loginForm(page).getByLabel("Password", { exact: true }).fill(PASSWORD);
    await loginForm(page).getByRole("button", { name: "Log in" }).click();
    const busy = loginForm(page).getByRole("button", { name: "Logging in…" });
    await busy.waitFor();
    expect(await busy.isDisabled()).toBe(true);
    expect(await page.getByRole("status").filter({ hasText: "Logging in…" }).count()).toBe(1);
    expect(await page.locator(".message").count()).toBe(0); // no message box while it is under way
    release();
    await loggedIn(page, user.email);
    expect(errors).toEqual([]);
  });
});

describe("a link to one job", () => {
  test("#/jobs/<id>, as the ready email links, shows that job after logging in, focused", async () => {
    const user = await gatewayClient(base).newUser("web-link", PASSWORD);
    const job = await jobStore(mongo.db).create({
      userId: user.id,
      email: user.email,
      source: { kind: "upload", filename: "linked talk.mp4", bytes: 1000, contentType: "video/mp4" },
    });
    const opened = await openPage(browser, `${base}/#/jobs/${job._id.toHexString()}`, DESKTOP);
    pages.push(opened);
    const { page, errors } = opened;
    await logIn(page, user.email);
    const heading = jobItem(page, "linked talk.mp4").getByRole("heading", { name: "linked talk.mp4" });
    await page.waitForFunction((element) => element === document.activeElement, await heading.elementHandle());
    expect(await jobItem(page, "linked talk.mp4").getAttribute("class")).toContain("linked");
    expect(errors).toEqual([]);
  });
});
