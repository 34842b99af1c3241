// Swagger UI at /docs (lib/docs.ts, on auth and the gateway) carries the page's protective
// headers, and still works under its Content-Security-Policy: in headless Chromium it
// renders the operations and runs one ("Try it out"), with no CSP violation reported.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import type { Browser } from "playwright-core";
import { AuthConfig, createAuth } from "../auth.ts";
import { parseConfig } from "../lib/config.ts";
import { apiDocs } from "../lib/docs.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { launchBrowser, openPage } from "./support/browser.ts";

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
