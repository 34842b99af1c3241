// What the job view adds for conversions you control (app.handle): a queued job's place
// in line (also on its event stream), the audio tracks the converter found, the cover
// the converter made (GET /jobs/:id/cover, removed with the job), and the OpenAPI
// document describing the options on every way in and the new fields.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Readable } from "node:stream";
import { ObjectId } from "mongodb";
import type { JobView } from "../gateway.ts";
import { OPTION_FIELDS } from "../lib/options.ts";
import { drainQueue } from "./support/jobs.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let gateway: Stack["gateway"];
let video: Blob;
beforeAll(async () => {
  stack = await startStack();
  gateway = stack.gatewayWith({ MAX_ACTIVE_JOBS: "50" });
  video = new Blob([await Bun.file(await makeVideo({ seconds: 1 })).arrayBuffer()], { type: "video/mp4" });
});
afterAll(() => stack?.stop());

type User = Awaited<ReturnType<Stack["newUser"]>>;
const call = (path: string, init: RequestInit = {}) => stack.call(path, init, gateway.app);

async function upload(user: User, name = "clip.mp4"): Promise<JobView> {
  const body = new FormData();
  body.append("file", video, name);
  const response = await call("/jobs", { method: "POST", headers: user.headers, body });
  expect(response.status).toBe(202);
  return (await response.json()) as JobView;
}
const view = async (user: User, id: string) =>
  (await (await call(`/jobs/${id}`, { headers: user.headers })).json()) as JobView;

describe("a queued job's place in line", () => {
  test("counts every user's queued jobs that joined before it; moves up as they are taken; a retry joins at the end", async () => {
    await drainQueue(stack.vhost.url, "video");
    const ada = await stack.newUser("line");
    const bob = await stack.newUser("line");
    const first = await upload(ada);
    const second = await upload(bob);
    const third = await upload(ada);
    expect(first.queuePosition).toBeGreaterThanOrEqual(1);
    expect([second.queuePosition, third.queuePosition]).toEqual([first.queuePosition! + 1, first.queuePosition! + 2]);
    expect((await view(bob, second.id)).queuePosition).toBe(first.queuePosition! + 1);

    await gateway.jobs.startConverting(new ObjectId(first.id)); // a converter took it
    expect((await view(ada, first.id)).queuePosition).toBeUndefined();
    expect((await view(bob, second.id)).queuePosition).toBe(first.queuePosition);
    const listed = (await (await call("/jobs", { headers: ada.headers })).json()) as { items: JobView[] };
    expect(listed.items.map((job) => [job.id, job.queuePosition])).toEqual([
      [third.id, first.queuePosition! + 1],
      [first.id, undefined],
    ]);

    await gateway.jobs.markFailed(new ObjectId(first.id), "it broke");
    const retried = await call(`/jobs/${first.id}/retry`, { method: "POST", headers: ada.headers });
    expect(((await retried.json()) as JobView).queuePosition).toBe(first.queuePosition! + 2); // behind second and third
  });

  test("the event stream tells the place in line, and again when it changes", async () => {
    const user = await stack.newUser("line");
    const ahead = await upload(user);
    const mine = await upload(user);
    const response = await call(`/jobs/${mine.id}/events`, { headers: user.headers });
    const { next, close } = statusReader(response);
    const opened = await next();
    expect(opened).toMatchObject({ status: "queued", queuePosition: mine.queuePosition });
    await gateway.jobs.startConverting(new ObjectId(ahead.id));
    expect(await next()).toMatchObject({ status: "queued", queuePosition: mine.queuePosition! - 1 });
    await close();
  });
});

/** Reads a job's event stream one `status` event at a time; `close` hangs up. */
function statusReader(response: Response) {
  const reader = (response.body as ReadableStream<Uint8Array | string>).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const next = async (): Promise<JobView> => {
    while (!buffer.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += typeof value === "string" ? value : decoder.decode(value, { stream: true });
    }
    const end = buffer.indexOf("\n\n");
    const block = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    const data = block.split("\n").find((line) => line.startsWith("data:"))!;
    return JSON.parse(data.slice(5)) as JobView;
  };
  return { next, close: () => reader.cancel() };
}

describe("what the converter adds to the view", () => {
  test("source.audioTracks, once written, are shown as they are", async () => {
    const user = await stack.newUser("tracks");
    const job = await upload(user);
    expect(job.source.audioTracks).toBeUndefined();
    const tracks = [
      { index: 0, codec: "aac", channels: 2, language: "eng", durationSec: 1 },
      { index: 1, codec: "opus", channels: 1, language: "deu", title: "Kommentar", durationSec: 1 },
    ];
    await gateway.jobs.collection.updateOne({ _id: new ObjectId(job.id) }, { $set: { "source.audioTracks": tracks } });
    expect((await view(user, job.id)).source.audioTracks).toEqual(tracks);
  });

  test("the cover: 404 until the converter stored one, then image/jpeg; gone with the job", async () => {
    const user = await stack.newUser("cover");
    const stranger = await stack.newUser("cover");
    const job = await upload(user);
    expect(job.links.cover).toBeUndefined();
    const none = await call(`/jobs/${job.id}/cover`, { headers: user.headers });
    expect(none.status).toBe(404);
    expect(none.headers.get("content-type")).toStartWith("application/problem+json");

    // As the converter leaves it: a JPEG in GridFS `covers`, its id on the job.
    const jpeg = Buffer.concat([
      Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
      Buffer.alloc(2000, 7),
      Buffer.from([0xff, 0xd9]),
    ]);
    const stored = (await gateway.jobs.get(new ObjectId(job.id)))!;
    const cover = await gateway.files.upload("covers", Readable.from([jpeg]), {
      owner: stored.userId,
      filename: "cover.jpg",
      contentType: "image/jpeg",
      jobId: job.id,
    });
    await gateway.jobs.collection.updateOne({ _id: stored._id }, { $set: { coverFileId: cover.id } });

    const shown = await view(user, job.id);
    expect(shown.links.cover).toBe(`/jobs/${job.id}/cover`);
    const answer = await call(shown.links.cover!, { headers: user.headers });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toBe("image/jpeg");
    expect(Buffer.from(await answer.arrayBuffer())).toEqual(jpeg);
    expect((await call(shown.links.cover!, { headers: stranger.headers })).status).toBe(404);
    expect((await call(shown.links.cover!)).status).toBe(401);

    expect((await call(`/jobs/${job.id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect(await gateway.files.stat("covers", cover.id)).toBeNull();
  });
});

describe("the OpenAPI document", () => {
  type Schema = { properties?: Record<string, unknown>; required?: string[]; $ref?: string; type?: string };
  type Operation = {
    parameters?: { name: string; in: string; schema: Schema }[];
    requestBody?: { content: Record<string, { schema: Schema }> };
    responses?: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }>;
  };

  test("describes every option on every way in, the new view fields and the cover route", async () => {
    const spec = (await (await call("/docs/json")).json()) as {
      paths: Record<string, Record<string, Operation>>;
      components: { schemas: Record<string, Schema & { properties: Record<string, Schema> }> };
    };
    expect(Object.keys(spec.components.schemas.ConversionOptions!.properties)).toEqual(OPTION_FIELDS);
    for (const path of ["/jobs", "/upload"]) {
      const create = spec.paths[path]!.post!;
      const query = Object.fromEntries(create.parameters!.filter((p) => p.in === "query").map((p) => [p.name, p]));
      expect(Object.keys(query)).toEqual(expect.arrayContaining(["filename", ...OPTION_FIELDS]));
      // Typed as the values they take: whole numbers as integers, from a form's text or a query's alike.
      expect([query.quality!.schema.type, query.bitrate!.schema.type, query.channels!.schema.type]).toEqual([
        "integer",
        "integer",
        "integer",
      ]);
      const content = create.requestBody!.content;
      expect(Object.keys(content)).toEqual(
        expect.arrayContaining(["multipart/form-data", "video/*", "audio/*", "application/json"]),
      );
      expect(Object.keys(content["multipart/form-data"]!.schema.properties!)).toEqual(["file", ...OPTION_FIELDS]);
      expect(Object.keys(content["application/json"]!.schema.properties!)).toEqual(["url", ...OPTION_FIELDS]);
    }
    // Only POST /jobs takes an Idempotency-Key, and says when its 202 is an earlier answer given again.
    const header = (path: string) => spec.paths[path]!.post!.parameters!.filter((p) => p.in === "header");
    expect(header("/jobs").map((p) => p.name)).toEqual(["Idempotency-Key"]);
    expect(header("/upload")).toEqual([]);
    expect(Object.keys(spec.paths["/jobs"]!.post!.responses!["202"]!.headers!)).toEqual(["Idempotent-Replayed"]);

    const job = spec.components.schemas.Job!.properties;
    expect(Object.keys(job)).toEqual(expect.arrayContaining(["options", "queuePosition", "source", "links"]));
    expect(job.options!.$ref).toBe("#/components/schemas/ConversionOptions"); // its fields: checked above
    expect(Object.keys(job.source!.properties!)).toContain("audioTracks");
    expect(Object.keys(job.links!.properties!)).toContain("cover");
    const cover = spec.paths["/jobs/{id}/cover"]!.get!;
    expect(Object.keys(cover.responses!["200"]!.content!)).toEqual(["image/jpeg"]);
  });
});
