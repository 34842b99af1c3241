// Conversion options through the gateway (app.handle) on every way in: form fields before
// and after `file`, JSON fields beside `url`, query parameters of a raw body, the /upload
// alias. Good ones are stored on the job and shown in its view; a bad one is 422 naming
// the field, one `job.options_refused` log line, and nothing stored: no GridFS file, no
// job, no message on `video`. Real RabbitMQ and MongoDB (MONGODB_URL or the stand-in).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ObjectId } from "mongodb";
import type { JobView } from "../gateway.ts";
import { createLogger } from "../lib/log.ts";
import { type ConversionOptions, ConversionOptions as OptionsSchema } from "../lib/options.ts";
import { drainQueue, settle } from "./support/jobs.ts";
import { makeAudio, makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let gateway: Stack["gateway"];
let video: Blob;
let mp3: Blob;
/** The gateway's log lines, parsed: tests wait on their events. */
const logged: { event?: string; fields?: string[]; way?: string }[] = [];

beforeAll(async () => {
  stack = await startStack();
  const log = createLogger("gateway", "info", { write: (line: string) => void logged.push(JSON.parse(line)) });
  gateway = stack.gatewayWith({}, { log });
  video = new Blob([await Bun.file(await makeVideo({ seconds: 1 })).arrayBuffer()], { type: "video/mp4" });
  mp3 = new Blob([await Bun.file(await makeAudio({ format: "mp3", seconds: 1 })).arrayBuffer()]);
});
afterAll(() => stack?.stop());

let user: Awaited<ReturnType<Stack["newUser"]>>;
beforeEach(async () => {
  user = await stack.newUser("options");
  await drainQueue(stack.vhost.url, "video"); // each test sees only the messages it caused
});

const call = (path: string, init: RequestInit) => stack.call(path, init, gateway.app);

/** A multipart form: `before` fields, the file, then `after` fields, in that order on the wire. */
function form(before: [string, string][], after: [string, string][] = [], file: Blob = video, name = "clip.mp4") {
  const body = new FormData();
  for (const [key, value] of before) body.append(key, value);
  body.append("file", file, name);
  for (const [key, value] of after) body.append(key, value);
  return body;
}
const postForm = (body: FormData, path = "/jobs") => call(path, { method: "POST", headers: user.headers, body });
const postJson = (body: unknown) =>
  call("/jobs", {
    method: "POST",
    headers: { ...user.headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const postRaw = (query: string, body: Blob = mp3, type = "audio/mpeg") =>
  call(`/jobs?${query}`, { method: "POST", headers: { ...user.headers, "content-type": type }, body });

/** The job as stored and as shown, for a 202 answer; the one `video` message names only it. */
async function accepted(response: Response) {
  const text = await response.text();
  expect(response.status, text).toBe(202);
  const view = JSON.parse(text) as JobView;
  const stored = (await gateway.jobs.get(new ObjectId(view.id)))!;
  expect(await drainQueue<{ jobId: string }>(stack.vhost.url, "video", 1)).toEqual([{ jobId: view.id }]);
  return { view, stored };
}

const stored = () =>
  Promise.all(
    ["videos.files", "videos.chunks", "jobs"].map((name) => stack.mongo.db.collection(name).countDocuments()),
  );

/** A 422 naming exactly `fields`, with one log line saying so, and nothing left behind. */
async function refused(send: () => Promise<Response>, fields: string[]) {
  const before = await stored();
  const lines = logged.length;
  const response = await send();
  const problem = (await response.json()) as { detail: string; errors: { field: string; message: string }[] };
  expect(response.status, problem.detail).toBe(422);
  expect(response.headers.get("content-type")).toStartWith("application/problem+json");
  expect([...new Set(problem.errors.map((error) => error.field))].sort()).toEqual([...fields].sort());
  for (const field of fields) expect(problem.detail).toContain(field);
  expect(await stored()).toEqual(before);
  expect(await drainQueue(stack.vhost.url, "video")).toEqual([]);
  const refusals = logged.slice(lines).filter((line) => line.event === "job.options_refused");
  expect(refusals.map((line) => line.fields?.sort())).toEqual([[...new Set(fields)].sort()]);
  return problem;
}

describe("good options on every way in", () => {
  test("form fields before and after the file are stored, with normalize filled in, and shown as applied", async () => {
    const { view, stored } = await accepted(
      await postForm(
        form(
          [
            ["bitrate", "128"],
            ["start", "0:30"],
            ["channels", "1"],
          ],
          [
            ["end", "1:02:03.5"],
            ["track", "1"],
            ["title", "  Café “Live” at the Bürgerhaus  "],
            ["artist", "Ada"],
            ["album", ""],
            ["cover", "none"],
          ],
        ),
      ),
    );
    const chosen = {
      bitrate: 128,
      start: 30,
      channels: 1,
      end: 3723.5,
      track: 1,
      title: "Café “Live” at the Bürgerhaus",
      artist: "Ada",
      cover: "none",
    };
    expect(view.options).toEqual({ ...chosen, normalize: false } as ConversionOptions);
    expect(stored.options).toEqual(view.options);
    expect(stored.requestedOptions).toEqual(chosen as ConversionOptions);
    expect(Value.Check(OptionsSchema, stored.options)).toBe(true);
    expect((await (await call(`/jobs/${view.id}`, { headers: user.headers })).json()).options).toEqual(view.options);
  });

  test("JSON fields beside url: numbers, timestamps and booleans as JSON or as text", async () => {
    const url = "https://example.com/talk.mp4";
    const { view } = await accepted(await postJson({ url, quality: 2, start: "1:15", end: 90.25, normalize: "1" }));
    expect(view.options).toEqual({ quality: 2, start: 75, end: 90.25, normalize: true });
    const again = await accepted(await postJson({ url, normalize: true, channels: "2", quality: "9" }));
    expect(again.view.options).toEqual({ normalize: true, channels: 2, quality: 9 });
  });

  test("query parameters of a raw audio body, beside its filename", async () => {
    const { view } = await accepted(await postRaw("filename=song.mp3&bitrate=320&start=75.5&end=2:00&normalize=false"));
    expect(view.options).toEqual({ bitrate: 320, start: 75.5, end: 120, normalize: false });
    expect(view.source).toMatchObject({ filename: "song.mp3", contentType: "audio/mpeg" });
  });

  test("the /upload alias takes options like POST /jobs", async () => {
    const { view } = await accepted(await postForm(form([["quality", "4"]], [["normalize", "true"]]), "/upload"));
    expect(view.options).toEqual({ quality: 4, normalize: true });
  });

  test("no options: the view shows the gateway's defaults", async () => {
    const { view, stored } = await accepted(await postForm(form([])));
    expect(view.options).toEqual({ normalize: false });
    expect(stored.requestedOptions).toEqual({});
  });

  test("a retried job keeps its options", async () => {
    const { view } = await accepted(await postForm(form([["bitrate", "96"]], [["title", "Again"]])));
    await gateway.jobs.markFailed(new ObjectId(view.id), "it broke");
    const retried = await accepted(await call(`/jobs/${view.id}/retry`, { method: "POST", headers: user.headers }));
    expect(retried.view.options).toEqual({ bitrate: 96, title: "Again", normalize: false });
  });
});

const BAD_VALUES: [field: string, value: string][] = [
  ["quality", "10"],
  ["quality", "2.5"],
  ["quality", "best"],
  ["quality", "-1"],
  ["bitrate", "100"],
  ["bitrate", "128k"],
  ["start", "1:75"],
  ["start", "soon"],
  ["start", "-5"],
  ["end", "0"],
  ["end", "12:3"],
  ["track", "100"],
  ["track", "1.5"],
  ["channels", "3"],
  ["normalize", "yes"],
  ["title", "t".repeat(201)],
  ["title", "two\nlines"],
  ["artist", "a".repeat(201)],
  ["album", "tab\there"],
  ["cover", "picture"],
];

describe("a bad value is 422 naming its field, and nothing is stored", () => {
  test.each(BAD_VALUES)("%s = %j: after the file, before it, in the query, in JSON", async (field, value) => {
    await refused(() => postForm(form([], [[field, value]])), [field]);
    await refused(() => postForm(form([[field, value]])), [field]);
    await refused(() => postRaw(new URLSearchParams({ [field]: value }).toString()), [field]);
    await refused(() => postJson({ url: "https://example.com/v.mp4", [field]: value }), [field]);
  });

  test("JSON values of the wrong kind are refused too", async () => {
    const url = "https://example.com/v.mp4";
    await refused(
      () => postJson({ url, quality: true, normalize: 2, title: 42, cover: ["frame"] }),
      ["quality", "normalize", "title", "cover"],
    );
  });
});

describe("the rules between fields", () => {
  test("quality excludes bitrate, also when one comes after the file", async () => {
    await refused(() => postForm(form([["quality", "2"]], [["bitrate", "128"]])), ["quality", "bitrate"]);
    await refused(() => postRaw("quality=2&bitrate=128"), ["quality", "bitrate"]);
  });

  test("end must be after start: equal or earlier is 422 naming end", async () => {
    await refused(() => postForm(form([["start", "1:00"]], [["end", "60"]])), ["end"]);
    await refused(() => postForm(form([["end", "0:30"]], [["start", "45"]])), ["end"]);
    await refused(() => postJson({ url: "https://example.com/v.mp4", start: "2:00", end: "1:59.999" }), ["end"]);
  });

  test("an unknown field is 422 naming it, on every way in", async () => {
    const problem = await refused(() => postForm(form([], [["bitrat", "128"]])), ["bitrat"]);
    expect(problem.errors[0]!.message).toContain("bitrate");
    await refused(() => postRaw("filename=a.mp3&Quality=2"), ["Quality"]);
    await refused(() => postJson({ url: "https://example.com/v.mp4", speed: 2 }), ["speed"]);
    await refused(() => postForm(form([["quality", "2"]], [["volume", "11"]])), ["volume"]);
  });

  test("a field given twice (in the form and the query, or twice in the form) is 422", async () => {
    await refused(() => postForm(form([["quality", "2"]], [["quality", "3"]])), ["quality"]);
    await refused(
      () => call("/jobs?quality=2", { method: "POST", headers: user.headers, body: form([["quality", "2"]]) }),
      ["quality"],
    );
  });

  test("a form that breaks once its file is stored (too many fields after it) keeps nothing either", async () => {
    const before = await stored();
    const fields = Array.from({ length: 25 }, (_, i): [string, string] => [`note${i}`, "x"]);
    const { body, headers } = stagedForm(await video.bytes(), fields, async () => {
      // The rest of the form is sent only once the file is in GridFS, as on a slow connection.
      await settle(stored, ([files]) => files! > before[0]!);
    });
    const response = await call("/jobs", { method: "POST", headers: { ...user.headers, ...headers }, body });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { detail: string }).detail).toContain("too many fields");
    expect(await stored()).toEqual(before);
    expect(await drainQueue(stack.vhost.url, "video")).toEqual([]);
  });

  test("a bad link and bad options are named together", async () => {
    await refused(() => postJson({ url: "ftp://example.com/v.mp4", channels: 5 }), ["url", "channels"]);
  });
});

/** A multipart body sent in two parts: the file, then (after `between`) the fields after it. */
function stagedForm(file: Uint8Array, after: [string, string][], between: () => Promise<void>) {
  const boundary = "staged-form-boundary";
  const encoder = new TextEncoder();
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n`;
  const rest = after.map(
    ([name, value]) => `\r\n--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}`,
  );
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(encoder.encode(head));
      controller.enqueue(file);
      controller.enqueue(encoder.encode(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="first"\r\n\r\nx`));
      await between();
      controller.enqueue(encoder.encode(`${rest.join("")}\r\n--${boundary}--\r\n`));
      controller.close();
    },
  });
  return { body, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } };
}
