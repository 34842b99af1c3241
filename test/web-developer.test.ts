// The page's Developer dialog (issue 19) in headless Chromium against the real stack
// (test/support/web-stack.ts, URL_ALLOW_HOSTS=127.0.0.1 so a webhook reaches a local
// receiver): an API key made in the page, copied, used from outside, deleted and then
// refused; webhooks added in the page (a private URL refused in words), a conversion's
// deliveries seen in the panel, refreshed on demand, the secret copied verifying the
// signature. Screenshots at 1280×800 and 390×844 land in test-artifacts/.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import type { Mongo } from "../lib/mongo.ts";
import type { WebhookDelivery } from "../lib/webhooks.ts";
import { ApiError } from "../web/api.ts";
import type { Delivery } from "../web/developer-api.ts";
import { deliveryDetail, developerError, momentText } from "../web/developer-text.ts";
import { ARTIFACTS, DESKTOP, openPage, screenshots, type TestPage } from "./support/browser.ts";
import { gatewayClient } from "./support/client.ts";
import { alert, jobItem, loggedIn, logIn, PASSWORD, sendFile, textOf, webStack } from "./support/web-stack.ts";
import { startReceiver, verified } from "./support/webhooks.ts";

/** Each gateway remembers what auth said about a key for up to 30 s (gateway/api-keys.ts). */
const REVOCATION_WINDOW_MS = 30_000;
setDefaultTimeout(90_000);

const stack = webStack({ maxUploadBytes: 2 * 1024 * 1024, videoSeconds: 2, urlAllowHosts: "127.0.0.1" });
const receiver = startReceiver();
let browser: Browser;
let base: string;
let video: Buffer;
let mongo: Mongo;
const pages: TestPage[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ({ browser, base, video, mongo } = await stack.start());
});
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});
afterAll(async () => {
  receiver.stop();
  await stack.stop();
});

// ── helpers ─────────────────────────────────────────────────────────────────
/** A new account, logged in on a fresh page that may use the clipboard; the Developer dialog open. */
async function developer() {
  const { email } = await gatewayClient(base).newUser("developer", PASSWORD);
  const opened = await openPage(browser, base, {
    viewport: DESKTOP,
    permissions: ["clipboard-read", "clipboard-write"],
  });
  pages.push(opened);
  const { page } = opened;
  await logIn(page, email);
  await loggedIn(page, email);
  await page.getByRole("button", { name: "Developer" }).click();
  const dialog = page.getByRole("dialog", { name: "Developer" });
  await dialog.waitFor();
  return { ...opened, dialog };
}

/** Asks `probe` again every 100 ms until it answers something, for at most `limitMs`. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 30_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const answer = await probe();
    if (answer !== undefined) return answer;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await Bun.sleep(100);
  }
}

const jobsWith = (key: string) => fetch(`${base}/jobs`, { headers: { authorization: `Bearer ${key}` } });
const clipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText());

/** The delivery stored for the webhook at `url`, once `done` says it is far enough. */
async function storedDelivery(url: string, done: (delivery: WebhookDelivery) => boolean) {
  return eventually(`a delivery to ${url}`, async () => {
    const webhook = await mongo.db.collection("webhooks").findOne({ url });
    if (!webhook) return undefined;
    const deliveries = await mongo.db.collection<WebhookDelivery>("webhook_deliveries").find({}).toArray();
    return deliveries.find((delivery) => delivery.webhookId.equals(webhook._id) && done(delivery));
  });
}

// ── API keys ────────────────────────────────────────────────────────────────
describe("API keys in the page", () => {
  test("a key made in the page is shown once, copied, works from a program, and is refused once deleted", async () => {
    const { page, dialog, errors } = await developer();
    const keys = dialog.getByRole("region", { name: "API keys" });
    await keys.getByText("No API keys yet.").waitFor();

    // A name of spaces only: the API's rule, said for a person.
    await keys.getByLabel("Name").fill("   ");
    await keys.getByRole("button", { name: "Create key" }).click();
    expect(await textOf(alert(page))).toBe(
      "Please check the key's name. The name must be 1 to 100 characters, not only spaces.",
    );

    await keys.getByLabel("Name").fill("backup script");
    await keys.getByRole("button", { name: "Create key" }).click();
    const shown = keys.getByRole("region", { name: "Your new API key “backup script”" });
    await shown.waitFor();
    expect(await textOf(shown)).toContain("Copy it now: you will not see it again.");
    await shown.getByRole("button", { name: "Copy" }).click();
    await shown.getByText("Copied to the clipboard.").waitFor();
    const key = await clipboard(page);
    expect(key).toMatch(/^m3d_[\w-]{43}$/);
    expect(await shown.getByLabel("API key", { exact: true }).inputValue()).toBe(key);
    const row = keys.getByRole("listitem").filter({ has: page.getByRole("heading", { name: "backup script" }) });
    expect(await textOf(row)).toMatch(/^backup script m3d_\S+… · created .+ · never used Delete$/);
    expect(key).toStartWith((await row.locator("code").textContent())!.replace("…", ""));
    await screenshots(page, "developer-key", shown);

    // A program sends it as its bearer.
    expect((await jobsWith(key)).status).toBe(200);

    // Opened again: the key is not shown any more; the list says it was used.
    await page.mouse.click(10, 400); // on the backdrop, beside the dialog: it closes
    await dialog.waitFor({ state: "hidden" });
    await screenshots(page, "developer-header"); // where the dialog opens from
    await page.getByRole("button", { name: "Developer" }).click();
    await row.getByText("last used").waitFor();
    expect(await shown.count()).toBe(0);
    expect(await dialog.getByLabel("API key", { exact: true }).count()).toBe(0);

    // Deleting asks once more in the row; Cancel keeps it.
    await row.getByRole("button", { name: "Delete backup script" }).click();
    await row.getByText("Delete “backup script”? Programs that use it are refused within a minute.").waitFor();
    await row.getByRole("button", { name: "Cancel" }).click();
    await row.getByRole("button", { name: "Delete key" }).waitFor({ state: "detached" });
    await row.getByRole("button", { name: "Delete backup script" }).click();
    await row.getByRole("button", { name: "Delete key" }).click();
    await keys.getByText("Deleted “backup script”.").waitFor();
    await keys.getByText("No API keys yet.").waitFor();

    // The gateway that remembered it lets it go within the revocation window.
    const refused = await eventually(
      "the deleted key refused",
      async () => ((await jobsWith(key)).status === 401 ? 401 : undefined),
      REVOCATION_WINDOW_MS + 5000,
    );
    expect(refused).toBe(401);
    expect(errors).toEqual([]);
  });
});

// ── webhooks ────────────────────────────────────────────────────────────────
describe("webhooks in the page", () => {
  test("a private URL is refused in words; a conversion's deliveries show as delivered and pending, refreshed on demand", async () => {
    const { page, dialog, errors } = await developer();
    await page.keyboard.press("Escape"); // a modal dialog: Escape closes it
    await dialog.waitFor({ state: "hidden" });
    await page.getByRole("button", { name: "Developer" }).click();
    const hooks = dialog.getByRole("region", { name: "Webhooks" });
    await hooks.getByText("No webhooks yet.").waitFor();
    const add = async (url: string) => {
      await hooks.getByLabel("URL").fill(url);
      await hooks.getByRole("button", { name: "Add webhook" }).click();
    };

    await add("http://10.1.2.3/hook");
    expect(await textOf(alert(page))).toBe("That URL can't be used. The URL points to a private address.");
    await screenshots(page, "developer-webhook-refused", alert(page));
    for (const box of await hooks.getByRole("checkbox").all()) await box.uncheck();
    await add("http://127.0.0.1/hook");
    expect(await textOf(alert(page))).toBe("Choose at least one event to send.");

    // One webhook for job.done that answers 200; one for both events that always answers 500.
    const good = `http://127.0.0.1:${receiver.port}/hook`;
    const broken = `http://127.0.0.1:${receiver.port}/broken`;
    receiver.answerAlways("/broken", 500);
    await hooks.getByRole("checkbox", { name: /job\.done/ }).check();
    await add(good);
    const shown = hooks.getByRole("region", { name: `The signing secret of ${good}` });
    await shown.getByRole("button", { name: "Copy" }).click();
    await shown.getByText("Copied to the clipboard.").waitFor();
    const secret = await clipboard(page);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(await textOf(shown)).toContain("Copy it now: you will not see it again.");
    await shown.getByRole("button", { name: "Done" }).click();
    await shown.waitFor({ state: "detached" });
    await add(broken); // the checkboxes are back to both events
    await hooks.getByRole("region", { name: `The signing secret of ${broken}` }).waitFor();

    const goodRow = hooks.getByRole("listitem").filter({ has: page.getByRole("heading", { name: good }) });
    const brokenRow = hooks.getByRole("listitem").filter({ has: page.getByRole("heading", { name: broken }) });
    expect(await textOf(goodRow.locator(".meta").first())).toMatch(/^job\.done · added /);
    expect(await textOf(brokenRow.locator(".meta").first())).toMatch(/^job\.done, job\.failed · added /);
    await goodRow.getByRole("button", { name: `Deliveries to ${good}` }).click();
    const goodDeliveries = goodRow.getByRole("region", { name: `Recent deliveries to ${good}` });
    await goodDeliveries.getByText("Nothing sent yet").waitFor();

    // A conversion ends: each webhook gets its job.done.
    await dialog.getByRole("button", { name: "Close" }).click();
    const name = "Hooked talk.mp4";
    await sendFile(page, { name, mimeType: "video/mp4", buffer: video });
    await jobItem(page, name).getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    await storedDelivery(good, (delivery) => !!delivery.deliveredAt);
    await storedDelivery(broken, (delivery) => delivery.attempts >= 1 && delivery.lastStatus === 500);

    await page.getByRole("button", { name: "Developer" }).click();
    await goodRow.getByRole("button", { name: `Deliveries to ${good}` }).click();
    const delivered = goodDeliveries.getByRole("listitem");
    await delivered.waitFor();
    expect(await textOf(delivered)).toMatch(
      new RegExp(`^Delivered job\\.done · ${RegExp.escape(name)} \\S.* · Delivered at .+ on the first try\\.$`),
    );
    await brokenRow.getByRole("button", { name: `Deliveries to ${broken}` }).click();
    const pending = brokenRow.getByRole("region", { name: `Recent deliveries to ${broken}` }).getByRole("listitem");
    await pending.waitFor();
    expect(await textOf(pending)).toMatch(
      /^Pending job\.done · .+ · \d+ tr(y|ies) so far: it answered 500\. Next try at /,
    );

    // What was posted is signed with the secret the page showed.
    const [posted] = receiver.at("/hook");
    expect(verified(secret, posted!)).toMatchObject({ type: "job.done" });

    // Refreshed on demand: a job a program sends while the panel is open shows once Refresh is pressed.
    const { token } = await page.evaluate(() => JSON.parse(localStorage.getItem("m3dio.session")!));
    const form = new FormData();
    form.append("file", new Blob([new Uint8Array(video)], { type: "video/mp4" }), "From a program.mp4");
    const sent = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const { id } = (await sent.json()) as { id: string };
    await storedDelivery(good, (delivery) => delivery.jobId.toHexString() === id && !!delivery.deliveredAt);
    expect(await goodDeliveries.getByRole("listitem").count()).toBe(1);
    await goodDeliveries.getByRole("button", { name: "Refresh" }).click();
    const newest = goodDeliveries.getByRole("listitem").first();
    await goodDeliveries.getByRole("listitem").nth(1).waitFor();
    expect(await textOf(newest)).toMatch(new RegExp(`^Delivered job\\.done · job ${id} \\S.* · Delivered at `));
    expect(await textOf(goodDeliveries.getByRole("status"))).toMatch(/^As of \S/);
    await screenshots(page, "developer-webhooks", brokenRow);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(ARTIFACTS, "developer-webhooks-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });

    // Deleting asks once more; then nothing more is sent to it.
    await brokenRow.getByRole("button", { name: `Delete the webhook to ${broken}` }).click();
    await brokenRow.getByRole("button", { name: "Delete webhook" }).click();
    await hooks.getByText(`Nothing more is sent to ${broken}.`).waitFor();
    await brokenRow.waitFor({ state: "detached" });
    expect(
      await hooks
        .getByRole("listitem")
        .filter({ has: page.getByRole("heading") })
        .count(),
    ).toBe(1);
    expect(errors).toEqual([]);
  });
});

// ── the words, without a browser ────────────────────────────────────────────
describe("the Developer dialog's words", () => {
  const now = new Date("2026-12-01T10:10:00Z");
  const at = (iso: string) => momentText(iso, now);
  const delivery = (over: Partial<Delivery>): Delivery => ({
    id: "msg_x",
    event: "job.done",
    jobId: "6650f1c2a1b2c3d4e5f60719",
    state: "pending",
    attempts: 0,
    createdAt: "2026-12-01T10:05:00.000Z",
    tries: [],
    ...over,
  });

  test("a delivery's state in a sentence: delivered, tried and due again, given up, not yet tried", () => {
    const when = "2026-12-01T10:06:00.000Z";
    expect(deliveryDetail(delivery({ state: "delivered", attempts: 3, deliveredAt: when }), now)).toBe(
      `Delivered at ${at(when)} after 3 tries.`,
    );
    expect(deliveryDetail(delivery({ attempts: 2, lastStatus: 503, nextAttemptAt: when }), now)).toBe(
      `2 tries so far: it answered 503. Next try at ${at(when)}.`,
    );
    expect(
      deliveryDetail(delivery({ attempts: 1, lastError: "no answer within 10 s", nextAttemptAt: when }), now),
    ).toBe(`1 try so far: no answer within 10 s. Next try at ${at(when)}.`);
    expect(deliveryDetail(delivery({ state: "given_up", attempts: 7, lastStatus: 500, givenUpAt: when }), now)).toBe(
      `Given up at ${at(when)} after 7 tries: it answered 500.`,
    );
    expect(deliveryDetail(delivery({ nextAttemptAt: when }), now)).toBe(`Not tried yet: first try at ${at(when)}.`);
    // Another day's time says its date too; today's does not.
    const day = (iso: string) => new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" });
    expect(at("2026-11-28T10:06:00.000Z")).toContain(day("2026-11-28T10:06:00.000Z"));
    expect(at(when)).not.toContain(day(when));
  });

  test("what the key and webhook routes refuse is worded for the thing refused", () => {
    const problem = (status: number, detail?: string, errors?: { field: string; message: string }[]) =>
      new ApiError(status, { status, detail, errors });
    expect(developerError(problem(404, "no such webhook"), "webhook")).toEqual({
      title: "That webhook no longer exists.",
      detail: "The list now shows what there is.",
    });
    expect(developerError(problem(409, "you have 20 webhooks already; delete one first"), "webhook")).toEqual({
      title: "You have 20 webhooks already; delete one first.",
    });
    const events = [{ field: "events", message: "must have at least 1 item" }];
    expect(developerError(problem(422, "events must have at least 1 item", events), "webhook")).toEqual({
      title: "Please choose the events again.",
      detail: "The events must have at least 1 item.",
    });
    expect(developerError(problem(0), "key").title).toBe("Can't reach m3dio.");
    expect(developerError(problem(503, "auth is away"), "key").title).toStartWith("m3dio is briefly unavailable.");
  });
});
