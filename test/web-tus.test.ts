// The page's resumable uploads (issue 20) in headless Chromium against the real stack: a
// large file goes over tus (web/resumable.ts), keeps going after the connection drops, and
// after a reload the same file, chosen again, resumes from what the gateway stored rather
// than starting over; the job converts. Smaller files keep going whole (web.test.ts).
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import type { Mongo } from "../lib/mongo.ts";
import { openPage, type TestPage } from "./support/browser.ts";
import { gatewayClient } from "./support/client.ts";
import { alert, convertChosen, jobItem, loggedIn, logIn, PASSWORD, webStack } from "./support/web-stack.ts";

setDefaultTimeout(90_000);

const stack = webStack({ maxUploadBytes: 64 * 1024 * 1024, videoSeconds: 1 });
let browser: Browser;
let base: string;
let mongo: Mongo;
let tmp: string;
const pages: TestPage[] = [];

beforeAll(async () => {
  ({ browser, base, mongo, tmp } = await stack.start());
});
afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => {});
});
afterAll(() => stack.stop());

/** A minute of a 440 Hz tone as 16-bit stereo WAV: ~10 MB, past the page's 8 MiB threshold for tus. */
async function bigWav(name: string): Promise<string> {
  const path = join(tmp, name);
  const ffmpeg = Bun.spawn(
    ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=60", "-ac", "2", "-ar", "44100", path],
    { stderr: "inherit" },
  );
  if ((await ffmpeg.exited) !== 0) throw new Error("ffmpeg could not make the WAV");
  return path;
}

/** Chooses the file from disk (its date stays the same across reloads, as a person's file does) and sends it. */
async function sendPath(page: Page, path: string) {
  const [chooser] = await Promise.all([
    page.waitForEvent("filechooser"),
    page.getByRole("button", { name: "Choose files" }).click(),
  ]);
  await chooser.setFiles(path);
  await convertChosen(page);
}

const uplink = async (page: Page) => {
  const devtools = await page.context().newCDPSession(page);
  await devtools.send("Network.enable");
  return (conditions: { offline?: boolean; bytesPerSecond?: number }) =>
    devtools.send("Network.emulateNetworkConditions", {
      offline: conditions.offline ?? false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: conditions.bytesPerSecond ?? -1,
    });
};

const progress = (page: Page, verb: string, name: string) =>
  page.getByRole("progressbar", { name: new RegExp(`^${verb} ${RegExp.escape(name)}: \\d+% of `) });

describe("a large file over tus", () => {
  test("survives a dropped connection and a reload: the same file resumes from the stored offset, and converts", async () => {
    const user = await gatewayClient(base).newUser("webtus", PASSWORD);
    const name = "long tone.wav";
    const path = await bigWav(name);
    const opened = await openPage(browser, base);
    pages.push(opened);
    const { page, errors } = opened;
    await logIn(page, user.email);
    await loggedIn(page, user.email);
    const network = await uplink(page);
    await network({ bytesPerSecond: 2 * 1024 * 1024 });
    const patches: string[] = [];
    page.on("request", (request) => request.method() === "PATCH" && patches.push(request.url()));

    await sendPath(page, path);
    const uploading = progress(page, "Uploading", name);
    await uploading.waitFor();
    // The connection drops mid-way: a request fails, then the network is back and the upload goes on by itself.
    await page.waitForFunction(
      () => Number((document.getElementById("upload-bar") as HTMLProgressElement | null)?.value ?? 0) >= 15,
    );
    const failed = page.waitForEvent("requestfailed");
    await network({ offline: true });
    await failed;
    await network({ bytesPerSecond: 2 * 1024 * 1024 });
    await page.waitForFunction(
      () => Number((document.getElementById("upload-bar") as HTMLProgressElement | null)?.value ?? 0) >= 40,
    );

    // A reload mid-way: the same file, chosen again, is taken up where the gateway's bytes end.
    await page.reload();
    await loggedIn(page, user.email);
    const network2 = await uplink(page);
    await network2({ bytesPerSecond: 4 * 1024 * 1024 });
    await sendPath(page, path);
    const resuming = progress(page, "Resuming", name);
    await resuming.waitFor();
    expect(await resuming.evaluate((bar: HTMLProgressElement) => bar.value)).toBeGreaterThanOrEqual(40);
    await network2({});
    await page.getByText(`${name} is uploaded.`).waitFor();
    await jobItem(page, name).getByText("Done", { exact: true }).waitFor({ timeout: 60_000 });

    // One upload was made for it, and the file's PATCHes went to that one address.
    const uploads = await mongo.db.collection("uploads").find({}).toArray();
    const mine = uploads.filter((upload) => upload.filename === name);
    expect(mine).toHaveLength(1);
    expect(new Set(patches.map((url) => new URL(url).pathname))).toEqual(new Set([`/uploads/${mine[0]!._id}`]));
    expect(await alert(page).count()).toBe(0);
    expect(errors).toEqual([]);
  });
});
