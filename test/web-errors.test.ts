// The web page in headless Chromium against the real stack (test/support/web-stack.ts):
// each test is one person's visit, checked by what the page shows. Screenshots land
// in test-artifacts/. Quotas, what goes wrong in words for a person, and links;
// test/web.test.ts has the page, a video converted and retrying.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileStore } from "../lib/files.ts";
import { jobStore } from "../lib/jobs.ts";
import type { TestPage } from "./support/browser.ts";
import {
  alert,
  jobItem,
  jobItems,
  loggedIn,
  logIn,
  loginForm,
  register,
  registerForm,
  sendFile,
  textOf,
} from "./support/web-stack.ts";
import {
  ARTIFACTS,
  base,
  MAX_UPLOAD_BYTES,
  mongo,
  newEmail,
  registerByApi,
  USER_STORAGE_BYTES,
  useWebVisits,
  video,
  visit,
} from "./support/web-visits.ts";

useWebVisits();

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
