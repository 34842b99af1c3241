// The page's account parts (issue 18) in headless Chromium against the real stack
// (test/support/web-stack.ts, whose notifier sends through the local Resend stand-in):
// confirming the address by the emailed link, a forgotten password reset by its link,
// sessions kept ("Remember me") and renewed, the account dialog, and share links. Each test
// is one person's visit, checked by what the page shows; screenshots of the new views at
// 1280×800 and 390×844 land in test-artifacts/.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import * as jose from "jose";
import type { Browser, Page } from "playwright-core";
import { ARTIFACTS, DESKTOP, openPage, screenshots, type TestPage } from "./support/browser.ts";
import { gatewayClient } from "./support/client.ts";
import type { ReceivedEmail } from "./support/resend.ts";
import {
  alert,
  audioReady,
  emailedLink,
  jobItem,
  loggedIn,
  logIn,
  loginForm,
  PASSWORD,
  register,
  sendFile,
  textOf,
  webStack,
} from "./support/web-stack.ts";

const NEW_PASSWORD = "a brand new password";
setDefaultTimeout(60_000);

const stack = webStack({ maxUploadBytes: 2 * 1024 * 1024, videoSeconds: 2 });
let browser: Browser;
let base: string;
let video: Buffer;
let emails: ReceivedEmail[];
const pages: TestPage[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ({ browser, base, video, emails } = await stack.start());
});
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});
afterAll(() => stack.stop());

// ── helpers ─────────────────────────────────────────────────────────────────
let users = 0;
const newEmail = () => `accounts${++users}.${Date.now()}@example.com`;

async function visit(options: Parameters<typeof openPage>[2] = {}, url = base): Promise<TestPage> {
  const opened = await openPage(browser, url, { viewport: DESKTOP, ...options });
  pages.push(opened);
  return opened;
}

async function registerByApi() {
  const user = await gatewayClient(base).newUser("accounts", PASSWORD);
  return { email: user.email };
}

/** The session the page keeps: in localStorage when remembered, else in sessionStorage. */
const kept = (page: Page, area: "localStorage" | "sessionStorage" = "localStorage") =>
  page.evaluate((where) => JSON.parse(window[where].getItem("m3dio.session") ?? "null"), area) as Promise<{
    token: string;
    refreshToken: string;
  } | null>;

const postJson = (path: string, body: unknown) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

// ── confirming the address ──────────────────────────────────────────────────
describe("confirming the email address", () => {
  test("a new account sees a banner whose resend says when; the emailed link confirms it and the banner goes", async () => {
    const { page, errors } = await visit();
    const email = newEmail();
    await register(page, email);
    await loggedIn(page, email);
    const banner = page.getByRole("region", { name: "Please confirm your email address" });
    await banner.waitFor();
    expect(await textOf(banner)).toContain(`We sent a link to ${email}.`);
    // The registration's email counts: asking again at once is refused, said with how long to wait.
    await banner.getByRole("button", { name: "Send it again" }).click();
    await banner.getByText("We sent you one less than 10 minutes ago.").waitFor();
    expect(await textOf(banner)).toMatch(/if it isn't there, you can ask again in (9|10) minutes\./);
    await screenshots(page, "accounts-verify-banner");

    const link = await emailedLink(emails, email, "verify");
    expect(link).toStartWith(`${base}/verify?token=`);
    await page.goto(link);
    await page.getByText("Your email address is confirmed.").waitFor();
    await loggedIn(page, email);
    await banner.waitFor({ state: "hidden" });
    expect(page.url()).toBe(`${base}/`); // the token is gone from the address
    expect(jose.decodeJwt((await kept(page))!.token).email_verified).toBe(true);
    await screenshots(page, "accounts-verified");

    // The link works once: followed again, it says the address is confirmed already.
    await page.goto(link);
    await page.getByText("That link was used already: your email address is confirmed.").waitFor();
    expect(errors).toEqual([]);
  });

  test("logged out, the link confirms and asks to log in; a used one says how to get another", async () => {
    const { email } = await registerByApi();
    const link = await emailedLink(emails, email, "verify");
    // The gateway serves the page there too, with its headers: no referrer carries the token on.
    const served = await fetch(link);
    expect(served.headers.get("content-type")).toStartWith("text/html");
    expect(served.headers.get("referrer-policy")).toBe("no-referrer");
    expect(served.headers.get("content-security-policy")).toContain("default-src 'self'");
    const { page, errors } = await visit({}, link);
    await page.getByText("Your email address is confirmed.").waitFor();
    expect(await textOf(page.getByText("Your email address is confirmed.").locator(".."))).toContain(
      "Log in to go on.",
    );
    await logIn(page, email);
    await loggedIn(page, email);
    await expect(page.getByRole("region", { name: "Please confirm your email address" }).isVisible()).resolves.toBe(
      false,
    );
    const elsewhere = await visit({}, link); // another browser, logged out
    const refused = alert(elsewhere.page);
    await refused.getByText("That confirmation link doesn't work any more.").waitFor();
    expect(await textOf(refused)).toContain("Log in, then choose “Send it again” for a new one.");
    await screenshots(elsewhere.page, "accounts-verify-used", refused);
    expect([...errors, ...elsewhere.errors]).toEqual([]);
  });
});

// ── a forgotten password ────────────────────────────────────────────────────
describe("a forgotten password", () => {
  test("the same answer for any address; the emailed link's view sets a new password that logs in", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await page.getByRole("button", { name: "Forgot your password?" }).click();
    const forgot = page.getByRole("form", { name: "Reset your password" });
    for (const address of [`nobody-${email}`, email]) {
      await forgot.getByLabel("Email").fill(address);
      await forgot.getByRole("button", { name: "Send the link" }).click();
      await page
        .getByText(`If an account exists for ${address}, we sent it a link to choose a new password.`)
        .waitFor();
    }
    await screenshots(page, "accounts-forgot");

    const link = await emailedLink(emails, email, "reset");
    expect(link).toStartWith(`${base}/reset?token=`);
    await page.goto(link);
    const reset = page.getByRole("form", { name: "Choose a new password" });
    const password = reset.getByLabel("New password", { exact: true });
    expect(await password.getAttribute("autocomplete")).toBe("new-password");
    expect(await password.evaluate((input) => (input as HTMLInputElement).labels![0]!.textContent)).toBe(
      "New password",
    );
    await reset.getByText("8 to 256 characters.").waitFor(); // the rule, stated up front
    await password.fill(NEW_PASSWORD);
    await reset.getByRole("button", { name: "Show password" }).click();
    expect(await password.getAttribute("type")).toBe("text");
    expect(page.url()).toBe(`${base}/`);
    await screenshots(page, "accounts-reset");
    await reset.getByRole("button", { name: "Save the new password" }).click();
    await page.getByText("Your new password is saved.").waitFor();

    await logIn(page, email); // the old password
    await alert(page).waitFor();
    await logIn(page, email, NEW_PASSWORD);
    await loggedIn(page, email);

    // The link works once.
    await page.goto(link);
    await page.getByRole("form", { name: "Choose a new password" }).getByLabel("New password").fill("another new one");
    await page.getByRole("button", { name: "Save the new password" }).click();
    await alert(page).getByText("That reset link doesn't work any more.").waitFor();
    await page.getByRole("form", { name: "Reset your password" }).waitFor(); // where to ask for a new one
    expect(errors).toEqual([]);
  });
});

// ── sessions ────────────────────────────────────────────────────────────────
describe("sessions", () => {
  test("Remember me keeps the session across a reload and in a new tab; tabs follow a logout and a login", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await expect(page.getByLabel("Remember me").isChecked()).resolves.toBe(true);
    await logIn(page, email);
    await loggedIn(page, email);
    await page.reload();
    await loggedIn(page, email);
    const tab = await page.context().newPage();
    await tab.goto(base);
    await loggedIn(tab, email);

    const { refreshToken } = (await kept(page))!;
    await tab.getByRole("button", { name: "Log out" }).click();
    await tab.getByText("You have logged out.").waitFor();
    await page.getByText("You logged out in another tab.").waitFor();
    expect(await kept(page)).toBeNull();
    expect((await postJson("/auth/refresh", { refreshToken })).status).toBe(401); // ended on the server too

    await logIn(page, email);
    await loggedIn(tab, email); // the other tab follows the login
    expect(errors).toEqual([]);
  });

  test("without Remember me the session is this tab's: a reload keeps it, a new tab is logged out", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await page.getByLabel("Remember me").uncheck();
    await logIn(page, email);
    await loggedIn(page, email);
    expect(await kept(page)).toBeNull();
    expect(await kept(page, "sessionStorage")).not.toBeNull();
    await page.reload();
    await loggedIn(page, email);
    const tab = await page.context().newPage();
    await tab.goto(base);
    await loginForm(tab).waitFor();
    await expect(tab.getByText(`Logged in as ${email}`).isVisible()).resolves.toBe(false);
    expect(errors).toEqual([]);
  });

  test("the access token is renewed before it expires and once when refused; a refused refresh logs out", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    // A token the API refuses (401): the page trades the refresh token and goes on.
    const first = (await kept(page))!;
    await page.evaluate(() => {
      const saved = JSON.parse(localStorage.getItem("m3dio.session")!);
      localStorage.setItem("m3dio.session", JSON.stringify({ ...saved, token: "aaa.bbb.ccc" }));
    });
    const renewed = page.waitForResponse((r) => r.url() === `${base}/auth/refresh` && r.status() === 200);
    await page.reload();
    await renewed;
    await page.getByText("Nothing here yet").waitFor();
    const second = (await kept(page))!;
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(jose.decodeJwt(second.token).email).toBe(email);

    // Before it expires: 56 minutes on, the hour's token is renewed by itself.
    await page.clock.install(); // from the reload on, the page's timers and Date run on a clock the test moves
    const again = page.waitForResponse((r) => r.url() === `${base}/auth/refresh` && r.status() === 200);
    await page.reload();
    await loggedIn(page, email);
    await page.clock.fastForward("56:00");
    await again;
    expect((await kept(page))!.refreshToken).not.toBe(second.refreshToken);

    // A refresh token the API refuses too: back to the login form, saying why.
    await page.evaluate(() => {
      const saved = JSON.parse(localStorage.getItem("m3dio.session")!);
      const unknown = "A".repeat(43);
      localStorage.setItem("m3dio.session", JSON.stringify({ ...saved, token: "aaa.bbb.ccc", refreshToken: unknown }));
    });
    await page.reload();
    await alert(page).getByText("Your session has ended. Please log in again.").waitFor();
    await loginForm(page).waitFor();
    expect(await kept(page)).toBeNull();
    expect(errors).toEqual([]);
  });
});

// ── the account dialog ──────────────────────────────────────────────────────
describe("account settings", () => {
  test("change the password; delete the account after a warning and the password, then its login fails", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit();
    await logIn(page, email);
    await loggedIn(page, email);
    const open = page.getByRole("button", { name: "Account" });
    await open.click();
    const dialog = page.getByRole("dialog", { name: "Your account" });
    await dialog.waitFor();
    await page.keyboard.press("Escape"); // a modal dialog: Escape closes it
    await dialog.waitFor({ state: "hidden" });
    await open.click();

    const change = dialog.getByRole("form", { name: "Change your password" });
    await change.getByLabel("Current password").fill("not my password");
    await change.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
    await change.getByRole("button", { name: "Change password" }).click();
    await dialog.getByText("Your current password isn't right.").waitFor();
    await change.getByLabel("Current password").fill(PASSWORD);
    await change.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
    await change.getByRole("button", { name: "Change password" }).click();
    await dialog.getByText("Your password is changed.").waitFor();
    await screenshots(page, "accounts-settings");
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(ARTIFACTS, "accounts-settings-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });

    const remove = dialog.getByRole("form", { name: "Delete your account" });
    expect(await textOf(remove)).toContain("every conversion, video, MP3 and cover");
    expect(await textOf(remove)).toContain("It can't be undone.");
    await remove.getByLabel("Your password, to confirm").fill(PASSWORD); // the old one
    await remove.getByRole("button", { name: "Delete my account" }).click();
    await dialog.getByText("That password isn't right.").waitFor();
    await remove.getByLabel("Your password, to confirm").fill(NEW_PASSWORD);
    await remove.getByRole("button", { name: "Delete my account" }).click();
    await page.getByText("Your account is deleted.").waitFor();
    await dialog.waitFor({ state: "hidden" });
    await loginForm(page).waitFor();
    expect(await kept(page)).toBeNull();

    await logIn(page, email, NEW_PASSWORD);
    await alert(page).waitFor();
    await expect(page.getByText(`Logged in as ${email}`).isVisible()).resolves.toBe(false);
    expect((await postJson("/auth/login", { email, password: NEW_PASSWORD })).status).toBe(401);
    expect(errors).toEqual([]);
  });
});

// ── share links ─────────────────────────────────────────────────────────────
describe("share links", () => {
  test("the player plays a signed link; Copy share link's link downloads the MP3 without a token until sharing stops", async () => {
    const { email } = await registerByApi();
    const { page, errors } = await visit({ permissions: ["clipboard-read", "clipboard-write"] });
    await logIn(page, email);
    await loggedIn(page, email);
    const name = "Shared talk.mp4";
    await sendFile(page, { name, mimeType: "video/mp4", buffer: video });
    const item = jobItem(page, name);
    await item.getByText("Done", { exact: true }).waitFor({ timeout: 45_000 });
    const id = (await item.getAttribute("data-id"))!;
    const signed = new RegExp(`^${RegExp.escape(base)}/jobs/${id}/audio\\?expires=\\d+&sig=[\\w-]+$`);

    await item.getByRole("button", { name: "Play" }).click();
    const audio = await audioReady(page, item);
    expect(await audio.evaluate((element: HTMLAudioElement) => element.src)).toMatch(signed);

    await item.getByRole("button", { name: "Copy share link" }).click();
    await item.getByText(/^Link copied\. Anyone who has it can play or download this MP3 until /).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toMatch(signed);
    const { token } = (await kept(page))!;
    const owned = await fetch(`${base}/jobs/${id}/audio`, { headers: { authorization: `Bearer ${token}` } });
    const shared = await fetch(copied); // no token
    expect(shared.status).toBe(200);
    expect(shared.headers.get("content-type")).toBe("audio/mpeg");
    expect(shared.headers.get("content-disposition")).toContain("Shared talk.mp3");
    expect(new Uint8Array(await shared.arrayBuffer())).toEqual(new Uint8Array(await owned.arrayBuffer()));
    await screenshots(page, "accounts-share", item);

    await item.getByRole("button", { name: "Stop sharing" }).click();
    await item.getByText(/^Sharing stopped: the links made so far no longer work/).waitFor();
    expect((await fetch(copied)).status).toBe(403);
    // The open player got a fresh link that works.
    const fresh = await audio.evaluate((element: HTMLAudioElement) => element.src);
    expect(fresh).toMatch(signed);
    expect(fresh).not.toBe(copied);
    expect((await fetch(fresh)).status).toBe(200);
    expect(errors).toEqual([]);
  });
});
