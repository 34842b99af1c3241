// Idempotency-Key on POST /jobs (issue 19): the gateway in-process on a real auth, MongoDB
// (or its stand-in) and RabbitMQ. A key sent again by the same user within 24 h answers
// the first job again and stores nothing, however the request was framed (a form's new
// boundary, its fields in another order); five at once make one job, one video, one
// message; a key reused for another request, or longer than 255 characters, is 422 naming
// the header; a first request that failed leaves the key free.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import type { JobView } from "../gateway/models.ts";
import { claimsOf } from "./support/accounts.ts";
import { drainQueue } from "./support/jobs.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let videoPath: string;
let otherVideoPath: string;
beforeAll(async () => {
  stack = await startStack();
  videoPath = await makeVideo({ seconds: 1 });
  otherVideoPath = await makeVideo({ seconds: 2 });
});
afterAll(() => stack?.stop());
// Each test counts the messages it caused: none are left from the one before.
beforeEach(() => drainQueue(stack.vhost.url, "video"));

type User = Awaited<ReturnType<Stack["newUser"]>>;
const newUser = () => stack.newUser("idem");
const KEY = "Idempotency-Key";

function form(fields: [string, string][], path = videoPath, name = "talk.mp4") {
  const body = new FormData();
  for (const [field, value] of fields) body.append(field, value);
  body.append("file", Bun.file(path), name);
  return body;
}

const postForm = (user: User, key: string | undefined, body: FormData) =>
  stack.call("/jobs", { method: "POST", headers: { ...user.headers, ...(key ? { [KEY]: key } : {}) }, body });

const postRaw = (user: User, key: string, path = videoPath) =>
  stack.call("/jobs?filename=raw.mp4&quality=3", {
    method: "POST",
    headers: { ...user.headers, [KEY]: key, "content-type": "video/mp4" },
    body: Bun.file(path),
  });

const postLink = (user: User, key: string, body: Record<string, unknown>) =>
  stack.call("/jobs", {
    method: "POST",
    headers: { ...user.headers, [KEY]: key, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** What the user has stored: their jobs (by the email they carry) and their video files in GridFS. */
async function stored(user: User) {
  const jobs = await stack.mongo.db.collection("jobs").find({ email: user.email }).toArray();
  const owners = [...new Set(jobs.map((job) => job.userId as string))];
  const videos = await stack.mongo.db.collection("videos.files").countDocuments({ "metadata.owner": { $in: owners } });
  return { jobs: jobs.map((job) => job._id.toHexString()), videos };
}

const messages = async () => (await drainQueue(stack.vhost.url, "video")).map((message) => message.jobId);

async function accepted(answer: Response): Promise<JobView> {
  expect(answer.status).toBe(202);
  return (await answer.json()) as JobView;
}

async function problem(answer: Response, status: number) {
  expect(answer.status).toBe(status);
  expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
  return (await answer.json()) as { detail: string; errors?: { field: string; message: string }[] };
}

describe("the same key again", () => {
  test("a multipart upload sent again (a new boundary, its fields in another order) answers the first job, once", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const first = await postForm(
      user,
      key,
      form([
        ["quality", "4"],
        ["title", "Talk"],
      ]),
    );
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const job = await accepted(first);
    const again = await postForm(
      user,
      key,
      form([
        ["title", "Talk"],
        ["quality", "4"],
      ]),
    );
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await accepted(again)).toEqual(job);
    expect(await stored(user)).toEqual({ jobs: [job.id], videos: 1 });
    expect(await messages()).toEqual([job.id]);
  });

  test("a raw body and a link work the same", async () => {
    const user = await newUser();
    const rawKey = crypto.randomUUID();
    const raw = await accepted(await postRaw(user, rawKey));
    expect(await accepted(await postRaw(user, rawKey))).toEqual(raw);

    const linkKey = crypto.randomUUID();
    const body = { url: "https://videos.example.com/talk.mp4", title: "Talk", quality: 2 };
    const link = await accepted(await postLink(user, linkKey, body));
    const reordered = { quality: 2, title: "Talk", url: "https://videos.example.com/talk.mp4" };
    const again = await postLink(user, linkKey, reordered);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await accepted(again)).toEqual(link);

    expect((await stored(user)).jobs.sort()).toEqual([raw.id, link.id].sort());
    expect((await stored(user)).videos).toBe(1);
    expect((await messages()).sort()).toEqual([raw.id, link.id].sort());
  });

  test("five at once make one job, one video and one message; all five answer that job", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const answers = await Promise.all(Array.from({ length: 5 }, () => postForm(user, key, form([["quality", "5"]]))));
    // The four that lost the race read their bodies, waited for the first answer, and answer it again.
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202, 202, 202]);
    expect(answers.filter((answer) => answer.headers.get("idempotent-replayed") === "true")).toHaveLength(4);
    const ids = new Set(await Promise.all(answers.map(async (answer) => ((await answer.json()) as JobView).id)));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(await stored(user)).toEqual({ jobs: [id!], videos: 1 });
    expect(await messages()).toEqual([id!]);
  });

  test("keys are per user: another user's same key makes their own job", async () => {
    const [ada, bob] = [await newUser(), await newUser()];
    const key = "shared-looking-key";
    const first = await accepted(await postForm(ada, key, form([])));
    const second = await accepted(await postForm(bob, key, form([])));
    expect(second.id).not.toBe(first.id);
    expect((await messages()).sort()).toEqual([first.id, second.id].sort());
  });
});

describe("refusals", () => {
  test("a key reused for another request is 422 naming Idempotency-Key, and nothing is stored", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const job = await accepted(await postForm(user, key, form([["quality", "4"]])));
    await messages();
    for (const other of [
      () => postForm(user, key, form([["quality", "5"]])), // another option
      () => postForm(user, key, form([["quality", "4"]], otherVideoPath)), // another file
      () => postForm(user, key, form([["quality", "4"]], videoPath, "renamed.mp4")), // another name
      () => postRaw(user, key), // another way in
    ]) {
      const refused = await problem(await other(), 422);
      expect(refused.errors?.map((error) => error.field)).toEqual([KEY]);
    }
    expect(await stored(user)).toEqual({ jobs: [job.id], videos: 1 });
    expect(await messages()).toEqual([]);
  });

  test("a key longer than 255 characters is 422 naming it; 255 will do", async () => {
    const user = await newUser();
    const refused = await problem(await postForm(user, "k".repeat(256), form([])), 422);
    expect(refused.errors?.map((error) => error.field)).toEqual([KEY]);
    expect(await stored(user)).toEqual({ jobs: [], videos: 0 });
    await accepted(await postForm(user, "k".repeat(255), form([])));
  });

  test("a first request that failed is not remembered: the key makes a job once a request works", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const refused = await problem(await postForm(user, key, form([["quality", "11"]])), 422);
    expect(refused.errors?.map((error) => error.field)).toEqual(["quality"]);
    const job = await accepted(await postForm(user, key, form([["quality", "4"]])));
    expect(await stored(user)).toEqual({ jobs: [job.id], videos: 1 });
  });

  test("after 24 hours the key is free again: a new job", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const first = await accepted(await postForm(user, key, form([])));
    // A day passes (the TTL index removes such records within a minute; until then they count as gone).
    await stack.mongo.db
      .collection("idempotency_keys")
      .updateOne({ key }, { $set: { createdAt: new Date(Date.now() - 24 * 3_600_000 - 1000) } });
    const second = await accepted(await postForm(user, key, form([])));
    expect(second.id).not.toBe(first.id);
    expect((await stored(user)).jobs.sort()).toEqual([first.id, second.id].sort());
  });

  test("while the first request is still running, a repeat waits for it, then is 409 with Retry-After", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const userId = await userIdOf(user);
    // The first request is under way elsewhere (another replica): its claim is fresh.
    const now = new Date();
    await stack.mongo.db.collection("idempotency_keys").insertOne({
      userId,
      key,
      state: "pending",
      claim: crypto.randomUUID(),
      touchedAt: now,
      createdAt: now,
    });
    const busy = await postForm(user, key, form([]));
    await problem(busy, 409);
    expect(Number(busy.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await stored(user)).toEqual({ jobs: [], videos: 0 });
  }, 30_000);

  test("a claim its gateway abandoned (untouched for minutes) is taken over: the request makes the job", async () => {
    const user = await newUser();
    const key = crypto.randomUUID();
    const then = new Date(Date.now() - 5 * 60_000);
    await stack.mongo.db.collection("idempotency_keys").insertOne({
      userId: await userIdOf(user),
      key,
      state: "pending",
      claim: crypto.randomUUID(),
      touchedAt: then,
      createdAt: then,
    });
    const job = await accepted(await postForm(user, key, form([])));
    expect(await stored(user)).toEqual({ jobs: [job.id], videos: 1 });
    expect(await accepted(await postForm(user, key, form([])))).toEqual(job);
  });
});

/** The user's id, as the gateway knows it (the access token's subject). */
const userIdOf = async (user: User): Promise<string> => claimsOf(user.token).sub!;
