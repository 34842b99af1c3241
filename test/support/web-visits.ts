// The visits the web page tests share (test/web.test.ts, test/web-errors.test.ts): the web
// stack (test/support/web-stack.ts) with a 2 MiB upload limit, 16 MiB of storage per user and a
// 3 s video, started in beforeAll and stopped in afterAll; each test's pages closed when it
// ends; a page to visit and an account made through the API. The bindings are live:
// `useWebVisits()` sets them in beforeAll.
import { afterAll, afterEach, beforeAll, setDefaultTimeout } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import type { Mongo } from "../../lib/mongo.ts";
import { openPage, type TestPage } from "./browser.ts";
import { gatewayClient } from "./client.ts";
import { PASSWORD, webStack } from "./web-stack.ts";

export const ARTIFACTS = join(import.meta.dir, "..", "..", "test-artifacts");
export const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
export const USER_STORAGE_BYTES = 16 * 1024 * 1024;
export const VIDEO_SECONDS = 3;

export let browser: Browser;
export let base: string;
export let mongo: Mongo;
export let video: Buffer;
export let tmp: string;
const pages: TestPage[] = [];

/** Starts the stack for the calling test file and closes each test's pages when it ends. */
export function useWebVisits() {
  // A browser, real conversions and argon2 logins: more than bun's 5 s default (bunfig's `timeout` is not applied).
  setDefaultTimeout(60_000);

  const stack = webStack({
    maxUploadBytes: MAX_UPLOAD_BYTES,
    videoSeconds: VIDEO_SECONDS,
    userStorageBytes: USER_STORAGE_BYTES,
  });

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ({ browser, base, mongo, video, tmp } = await stack.start());
  });

  // Each test's pages go when it ends, so no stream or poll of one test runs into the next.
  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close().catch(() => {});
  });

  afterAll(() => stack.stop());
}

let userCounter = 0;
export const newEmail = () => `web${++userCounter}.${Date.now()}@example.com`;

export async function visit(options: Parameters<typeof openPage>[2] = {}): Promise<TestPage> {
  const opened = await openPage(browser, base, options);
  pages.push(opened);
  return opened;
}

/** Registers through the API (for tests about something else than registering). */
export async function registerByApi() {
  const user = await gatewayClient(base).newUser("web", PASSWORD);
  return { email: user.email, userId: user.id };
}
