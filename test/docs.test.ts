// Swagger UI at /docs (lib/docs.ts, on auth and the gateway) carries the page's protective
// headers, and still works under its Content-Security-Policy: in headless Chromium it
// renders the operations and runs one ("Try it out"), with no CSP violation reported. On
// the gateway's own document (test's stack), a new user registers and logs in from it: the
// bodies come filled with their examples, and the answers are shown.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import type { Browser, Page } from "playwright-core";
import { AuthConfig, createAuth } from "../auth.ts";
import { parseConfig } from "../lib/config.ts";
import { apiDocs } from "../lib/docs.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { launchBrowser, openPage } from "./support/browser.ts";
import { type Stack, startStack } from "./support/stack.ts";

const docsApp = () =>
  new Elysia()
    .use(problems(createLogger("docs-test", "silent")))
    .use(apiDocs({ title: "docs test", description: "a route to try" }))
    .get("/hello", () => ({ greeting: "hello from the API" }), {
      response: t.Object({ greeting: t.String() }),
      detail: { summary: "Says hello" },
    });

function expectProtected(response: Response) {
  const policy = response.headers.get("content-security-policy") ?? "";
  const directives = Object.fromEntries(
    policy.split(/;\s*/).map((directive) => [directive.split(" ")[0], directive.split(" ").slice(1)]),
  );
  expect(directives["default-src"]).toEqual(["'self'"]);
  expect(directives["frame-ancestors"]).toEqual(["'none'"]);
  expect(directives["object-src"]).toEqual(["'none'"]);
  // Only this origin and hashed inline code: no 'unsafe-inline', no other host.
  for (const name of ["script-src", "style-src", "connect-src"])
    for (const source of directives[name] ?? []) expect(source, name).toMatch(/^('self'|'sha256-[A-Za-z0-9+/=]+')$/);
  expect(response.headers.get("x-frame-options")).toBe("DENY");
  expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  expect(response.headers.get("referrer-policy")).toBe("no-referrer");
  expect(response.headers.get("content-type")).toStartWith("text/html");
}

describe("/docs headers", () => {
  test("Swagger UI is answered with a strict CSP, no framing, no referrer, no sniffing", async () => {
    const response = await docsApp().handle(new Request("http://localhost/docs"));
    expect(response.status).toBe(200);
    expectProtected(response);
  });

  test("auth's /docs carries them too (the gateway's: test/gateway.test.ts)", async () => {
    const config = parseConfig(AuthConfig, { MYSQL_URL: "mysql://root@127.0.0.1:1/unreachable", LOG_LEVEL: "silent" });
    const auth = await createAuth({ config });
    try {
      expectProtected(await auth.app.handle(new Request("http://localhost/docs")));
    } finally {
      await auth.close();
    }
  });
});

describe("/docs in a browser", () => {
  let browser: Browser;
  const app = docsApp();
  let base = "";

  beforeAll(async () => {
    app.listen({ port: 0, hostname: "127.0.0.1" });
    base = `http://127.0.0.1:${app.server!.port}`;
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await app.stop(true);
  });

  test("renders the operations and runs one, loading nothing from elsewhere and breaking no CSP rule", async () => {
    const requests: string[] = [];
    const opened = await openPage(browser, "about:blank");
    try {
      const { page, errors } = opened;
      page.on("request", (request) => requests.push(request.url()));
      const response = await page.goto(`${base}/docs`);
      expect(response?.headers()["content-security-policy"]).toContain("default-src 'self'");
      await page.getByText("Says hello").click();
      await page.getByRole("button", { name: "Try it out" }).click();
      await page.getByRole("button", { name: "Execute" }).click();
      await page.locator(".responses-wrapper").getByText("hello from the API").first().waitFor();
      expect(errors).toEqual([]);
      expect(requests.filter((url) => !url.startsWith(`${base}/`))).toEqual([]);
    } finally {
      await opened.close();
    }
  });
});

describe("the gateway's /docs, tried as a new user would", () => {
  let browser: Browser;
  let stack: Stack;
  let base = "";

  beforeAll(async () => {
    stack = await startStack();
    stack.gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
    base = `http://127.0.0.1:${stack.gateway.app.server!.port}`;
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.gateway.app.stop(true);
    await stack?.stop();
  });

  /** Opens an operation, fills its JSON body (shown with the example first), runs it; answers the status shown. */
  async function tryIt(page: Page, operation: string, example: string, body: object): Promise<string> {
    const block = page.locator(`#operations-auth-${operation}`);
    await block.locator(".opblock-summary").click();
    await block.getByRole("button", { name: "Try it out" }).click();
    const editor = block.locator("textarea.body-param__text");
    expect(await editor.inputValue()).toContain(example);
    await editor.fill(JSON.stringify(body));
    await block.getByRole("button", { name: "Execute" }).click();
    const status = block.locator(".live-responses-table tbody .response-col_status").first();
    await status.waitFor();
    return (await status.textContent())?.trim() ?? "";
  }

  test("register and log in from the page: example bodies, answers shown; Basic login's answer is text", async () => {
    const opened = await openPage(browser, `${base}/docs`);
    try {
      const { page, errors } = opened;
      const account = { email: `docs-${crypto.randomUUID()}@example.com`, password: "a good password" };
      expect(await tryIt(page, "postAuthRegister", "ada@example.com", account)).toBe("201");
      expect(await tryIt(page, "postAuthLogin", "ada@example.com", account)).toBe("200");
      await page
        .locator("#operations-auth-postAuthLogin .live-responses-table")
        .getByText("refreshToken")
        .first()
        .waitFor();
      const basic = page.locator("#operations-compatibility-postLogin");
      await basic.locator(".opblock-summary").click();
      await basic.locator(".responses-table").getByText("eyJhbGciOiJFZERTQSIs").first().waitFor(); // the token's example
      expect(await basic.locator('select:has(option[value="text/plain"])').first().inputValue()).toBe("text/plain");
      expect(errors).toEqual([]);
    } finally {
      await opened.close();
    }
  }, 60_000);
});
