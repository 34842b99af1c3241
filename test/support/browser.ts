// Headless Chromium for the page's tests: Debian's `chromium` package driven by
// playwright-core (which downloads no browser of its own). CHROMIUM_PATH overrides
// where it is. The flags keep Chromium from reaching out to Google's services,
// which this machine's closed network would refuse.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContextOptions, chromium, type Locator, type Page } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** Where the page's tests leave their screenshots. */
export const ARTIFACTS = join(import.meta.dir, "..", "..", "test-artifacts");
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS, headless: true });
}

export interface TestPage {
  page: Page;
  /** Uncaught exceptions and console errors (CSP violations among them), apart from failed HTTP answers the page handles. */
  errors: string[];
  close(): Promise<void>;
}

/** A fresh context (its own sessionStorage) with one page open at `url`. */
export async function openPage(browser: Browser, url: string, options: BrowserContextOptions = {}): Promise<TestPage> {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // A 4xx/5xx answer is logged by Chromium as "Failed to load resource"; the page shows those itself.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource"))
      errors.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  return { page, errors, close: () => context.close() };
}

/** The page at 1280×800 and at 390×844 (a phone), `shown` scrolled into view; back to 1280×800 after. */
export async function screenshots(page: Page, name: string, shown?: Locator) {
  for (const [size, viewport] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ] as const) {
    await page.setViewportSize(viewport);
    await shown?.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${size}.png`) });
  }
  await page.setViewportSize(DESKTOP);
}
