// Webhooks (issue 19), end to end in one process: webhooks registered through the gateway
// (auth on a port sharing GATEWAY_SECRET with it, so API keys work too; real MariaDB and
// RabbitMQ, MongoDB or its stand-in), a job's end announced
// on `mp3` as the converter does, the notifier delivering to a local HTTP receiver that
// answers as each test scripts it. Every delivery's signature is checked with the
// `standardwebhooks` package (the specification's own library), not with our signing code.
// DNS is a resolver hook of the test's (names under .test that only it knows), so the
// address rules are tested on the addresses the notifier really connects to.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { Webhook } from "standardwebhooks";
import { createAuth } from "../auth.ts";
import { jwksVerifier } from "../gateway/bearer.ts";
import { parseConfig } from "../lib/config.ts";
import { jobStore } from "../lib/jobs.ts";
import type { ResolvedAddress, Resolver } from "../lib/link.ts";
import { createLogger } from "../lib/log.ts";
import { connectQueue, QUEUES, type Queue } from "../lib/queue.ts";
import { webhookStore } from "../lib/webhooks.ts";
import { createNotifier, NotifierConfig } from "../notifier.ts";
import { authTestConfig, TEST_GATEWAY_SECRET } from "./support/auth.ts";
import { type Stack, startStack } from "./support/stack.ts";

interface LogLine {
  event?: string;
  [field: string]: unknown;
}
interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}
type Answer = number | "hang" | { redirect: string };

/** The receiver: records every request; answers each path's scripted answers in turn, then 200. */
function startReceiver() {
  const received: Received[] = [];
  const scripts = new Map<string, Answer[]>();
  const always = new Map<string, Answer>();
  const hanging: (() => void)[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      received.push({ path, headers: Object.fromEntries(request.headers), body: await request.text() });
      const answer = scripts.get(path)?.shift() ?? always.get(path) ?? 200;
      if (answer === "hang") return new Promise<Response>((resolve) => hanging.push(() => resolve(new Response())));
      if (typeof answer === "object")
        return new Response(null, { status: 302, headers: { location: answer.redirect } });
      return new Response("thanks", { status: answer });
    },
  });
  return {
    port: server.port,
    at: (path: string) => received.filter((request) => request.path === path),
    script: (path: string, answers: Answer[]) => scripts.set(path, [...answers]),
    answerAlways: (path: string, answer: Answer) => always.set(path, answer),
    stop() {
      for (const release of hanging) release();
      server.stop(true);
    },
  };
}

/** DNS as the test says: a name maps to addresses, or to a list of answers given in turn (the last one stays). */
function testDns() {
  const names = new Map<string, string[][]>();
  const resolve: Resolver = async (hostname) => {
    const answers = names.get(hostname);
    if (!answers) throw Object.assign(new Error(`${hostname} not found`), { code: "ENOTFOUND" });
    const next = answers.length > 1 ? answers.shift()! : answers[0]!;
    return next.map((address): ResolvedAddress => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return { resolve, set: (hostname: string, ...answers: string[][]) => names.set(hostname, answers) };
}

const receiver = startReceiver();
const gatewayDns = testDns();
const notifierDns = testDns();
const notifierLines: LogLine[] = [];
/** Test-sized: a try waits 400 ms for an answer, and three retries 50 ms apart end a delivery. */
const NOTIFIER_ENV = { URL_ALLOW_HOSTS: "127.0.0.1", WEBHOOK_TIMEOUT_MS: "400", WEBHOOK_RETRY_SCHEDULE_MS: "50,50,50" };
let stack: Stack;
let auth: Awaited<ReturnType<typeof createAuth>>;
let gatewayEnv: { AUTH_URL: string; GATEWAY_SECRET: string };
let gateway: ReturnType<Stack["gatewayWith"]>;
let notifier: Awaited<ReturnType<typeof notifierOfItsOwn>>;
let jobs: ReturnType<typeof jobStore>;
let webhooks: ReturnType<typeof webhookStore>;

/** A gateway on the stack's stores that asks this file's auth (for keys and tokens), DNS the test's. */
function gatewayOfItsOwn(env: Record<string, string>) {
  const verifier = jwksVerifier(`${gatewayEnv.AUTH_URL}/.well-known/jwks.json`);
  return stack.gatewayWith({ ...gatewayEnv, ...env }, { verifier, resolve: gatewayDns.resolve });
}

/** A notifier with a broker connection of its own, its lines kept in `notifierLines`. */
async function notifierOfItsOwn() {
  const queue: Queue = await connectQueue(stack.vhost.url, stack.log);
  const service = createNotifier({
    config: parseConfig(NotifierConfig, { MONGODB_URL: stack.mongoUrl, AMQP_URL: stack.vhost.url, ...NOTIFIER_ENV }),
    log: createLogger("notifier", "info", { write: (line: string) => void notifierLines.push(JSON.parse(line)) }),
    mongo: stack.mongo,
    queue,
    resolve: notifierDns.resolve,
  });
  await service.start();
  return {
    service,
    async stop() {
      await service.stop();
      await queue.close();
    },
  };
}

beforeAll(async () => {
  stack = await startStack();
  // An auth that trusts this file's gateway (GATEWAY_SECRET): it answers the gateway's questions about API keys.
  auth = await createAuth({
    config: authTestConfig(stack.database.url, { GATEWAY_SECRET: TEST_GATEWAY_SECRET }),
    queue: stack.queue,
  });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  // The receiver is on 127.0.0.1, which only URL_ALLOW_HOSTS opens; other private addresses stay shut.
  gatewayEnv = { AUTH_URL: `http://127.0.0.1:${auth.app.server!.port}`, GATEWAY_SECRET: TEST_GATEWAY_SECRET };
  gateway = gatewayOfItsOwn({ URL_ALLOW_HOSTS: "127.0.0.1" });
  await gateway.start();
  jobs = jobStore(stack.mongo.db);
  webhooks = webhookStore(stack.mongo.db);
  notifier = await notifierOfItsOwn();
});
afterAll(async () => {
  await notifier?.stop();
  await auth?.app.stop();
  await auth?.close();
  await stack?.stop();
  receiver.stop();
});

const call = (path: string, init: RequestInit = {}) => stack.call(path, init, gateway.app);
const postJson = (path: string, body: unknown, headers: Record<string, string>) =>
  call(path, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

let people = 0;
/** A user registered and logged in through this file's gateway, with their id (the token's subject). */
async function newUser() {
  const email = `hooks${++people}.${process.pid}.${Date.now()}@example.com`;
  const credentials = { email, password: "a good password" };
  expect((await postJson("/auth/register", credentials, {})).status).toBe(201);
  const { token } = (await (await postJson("/auth/login", credentials, {})).json()) as { token: string };
  const { sub } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { sub: string };
  return { email, token, id: sub, headers: { authorization: `Bearer ${token}` } };
}
type User = Awaited<ReturnType<typeof newUser>>;

let hosts = 0;
/** Registers a webhook at a fresh name (resolving to the receiver) and path; answers it with its secret. */
async function registered(user: User, events?: string[]) {
  const host = `hooks${++hosts}.test`;
  gatewayDns.set(host, ["127.0.0.1"]);
  notifierDns.set(host, ["127.0.0.1"]);
  const path = `/hook/${hosts}`;
  const answer = await postJson(
    "/webhooks",
    { url: `http://${host}:${receiver.port}${path}`, ...(events ? { events } : {}) },
    user.headers,
  );
  expect(answer.status).toBe(201);
  const webhook = (await answer.json()) as { id: string; url: string; events: string[]; secret: string };
  return { ...webhook, host, path };
}

/** A job of the user's, finished as the converter leaves one and announced on `mp3`. */
async function finished(user: User, status: "done" | "failed") {
  const job = await jobs.create({
    userId: user.id,
    email: user.email,
    source: { kind: "upload", filename: "talk.mp4", bytes: 1234, contentType: "video/mp4" },
  });
  await jobs.startConverting(job._id);
  if (status === "done") await jobs.markDone(job._id, new ObjectId(), { bytes: 4096, durationSec: 12.5 });
  else await jobs.markFailed(job._id, "the video has no audio track");
  await stack.queue.publish(
    QUEUES.mp3,
    { jobId: job._id.toHexString(), status },
    { messageId: `${job._id}-${status}` },
  );
  return job._id.toHexString();
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}
/** The notifier's line of `event` about the webhook (and the job, if given), once logged. */
async function logged(event: string, webhookId: string, jobId?: string): Promise<LogLine> {
  const match = (line: LogLine) =>
    line.event === event && line.webhookId === webhookId && (jobId === undefined || line.jobId === jobId);
  await until(() => notifierLines.some(match), `${event} for webhook ${webhookId}`);
  return notifierLines.find(match)!;
}
interface DeliveryAnswer {
  id: string;
  event: string;
  jobId: string;
  state: string;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  nextAttemptAt?: string;
  deliveredAt?: string;
  givenUpAt?: string;
  tries: { at: string; status?: number; error?: string }[];
}
async function deliveries(user: User, webhookId: string): Promise<DeliveryAnswer[]> {
  const answer = await call(`/webhooks/${webhookId}/deliveries`, { headers: user.headers });
  expect(answer.status).toBe(200);
  return ((await answer.json()) as { items: DeliveryAnswer[] }).items;
}
/** Checks a request with the specification's library: throws unless the signature is the secret's. */
const verified = (secret: string, request: Received) => new Webhook(secret).verify(request.body, request.headers);

describe("registering", () => {
  test("POST /webhooks answers 201 with a whsec_ secret once; GET lists it without; both events by default", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    expect(webhook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(webhook.secret.slice(6), "base64")).toHaveLength(32);
    expect(webhook.events).toEqual(["job.done", "job.failed"]);
    const list = (await (await call("/webhooks", { headers: user.headers })).json()) as { items: object[] };
    expect(list.items).toEqual([
      { id: webhook.id, url: webhook.url, events: ["job.done", "job.failed"], createdAt: expect.any(String) },
    ]);
    expect(JSON.stringify(list)).not.toContain("whsec_");
  });

  test("a URL that is not http(s), carries credentials, or reaches a private or metadata address is 422 naming url", async () => {
    const user = await newUser();
    gatewayDns.set("intranet.test", ["10.1.2.3"]);
    gatewayDns.set("split.test", ["127.0.0.1", "192.168.1.20"]);
    const urls = [
      "ftp://example.com/hook",
      "http://user:secret@hooks.example/hook",
      "not a url",
      "http://10.0.0.7/hook",
      "http://169.254.169.254/latest/meta-data",
      "http://[::1]:8080/hook",
      "http://intranet.test/hook",
      "http://split.test/hook", // every address must pass, not just one
      "http://nowhere.test/hook",
    ];
    for (const url of urls) {
      const answer = await postJson("/webhooks", { url }, user.headers);
      expect(answer.status, url).toBe(422);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
      const problem = (await answer.json()) as { errors: { field: string; message: string }[] };
      expect(
        problem.errors.map((error) => error.field),
        url,
      ).toEqual(["url"]);
    }
    // The gateway without URL_ALLOW_HOSTS refuses the loopback address the test's receiver is on.
    const plain = await stack.call(
      "/webhooks",
      {
        method: "POST",
        headers: { ...user.headers, "content-type": "application/json" },
        body: JSON.stringify({ url: `http://127.0.0.1:${receiver.port}/hook` }),
      },
      gatewayOfItsOwn({}).app,
    );
    expect(plain.status).toBe(422);
    expect(((await plain.json()) as { detail: string }).detail).toContain("private address");
    expect((await (await call("/webhooks", { headers: user.headers })).json()) as object).toEqual({ items: [] });
  });

  test("an unknown or no event, a missing url or one that is no text is 422 naming it; no token is 401", async () => {
    const user = await newUser();
    const bad = [
      [{ url: "https://example.com/hook", events: ["job.started"] }, "events"],
      [{ url: "https://example.com/hook", events: [] }, "events"],
      [{ events: ["job.done"] }, "url"],
      [{ url: 42 }, "url"],
    ] as const;
    for (const [body, field] of bad) {
      const answer = await postJson("/webhooks", body, user.headers);
      expect(answer.status, JSON.stringify(body)).toBe(422);
      const { errors } = (await answer.json()) as { errors: { field: string }[] };
      expect(errors.map((error) => error.field).join(" ")).toContain(field);
    }
    expect((await postJson("/webhooks", { url: "https://example.com/hook" }, {})).status).toBe(401);
    expect((await call("/webhooks")).status).toBe(401);
  });

  test("a program's API key registers, lists and deletes webhooks as its owner", async () => {
    const user = await newUser();
    const made = await postJson("/auth/keys", { name: "webhook script" }, user.headers);
    expect(made.status).toBe(201);
    const { key } = (await made.json()) as { key: string };
    const program = { ...user, headers: { authorization: `Bearer ${key}` } };
    const webhook = await registered(program, ["job.failed"]);
    const listed = (await (await call("/webhooks", { headers: user.headers })).json()) as { items: { id: string }[] };
    expect(listed.items.map((item) => item.id)).toEqual([webhook.id]);
    expect(await deliveries(program, webhook.id)).toEqual([]);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: program.headers })).status).toBe(204);
  });

  test("another user's webhook is 404 to list deliveries of and to delete, and not in their list", async () => {
    const owner = await newUser();
    const other = await newUser();
    const webhook = await registered(owner);
    expect((await call(`/webhooks/${webhook.id}/deliveries`, { headers: other.headers })).status).toBe(404);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: other.headers })).status).toBe(404);
    expect((await call("/webhooks/not-an-id", { method: "DELETE", headers: other.headers })).status).toBe(404);
    expect((await (await call("/webhooks", { headers: other.headers })).json()) as object).toEqual({ items: [] });
    expect(await deliveries(owner, webhook.id)).toEqual([]); // still the owner's
  });
});

describe("delivering", () => {
  test("a done job is posted signed; a 500 is tried again with the same webhook-id; the deliveries show both tries", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, [500]);
    const jobId = await finished(user, "done");
    await logged("webhook.delivered", webhook.id, jobId);
    const [first, second] = receiver.at(webhook.path);
    expect(receiver.at(webhook.path)).toHaveLength(2);
    for (const request of [first!, second!]) {
      expect(() => verified(webhook.secret, request)).not.toThrow();
      expect(request.headers["content-type"]).toBe("application/json");
      expect(Number(request.headers["webhook-timestamp"])).toBeGreaterThan(Date.now() / 1000 - 300);
    }
    expect(second!.headers["webhook-id"]).toBe(first!.headers["webhook-id"]!);
    expect(first!.headers["webhook-id"]).toMatch(/^msg_[A-Za-z0-9_-]+$/);
    expect(second!.body).toBe(first!.body);
    // The body: the event, when the job ended, and the job exactly as GET /jobs/:id shows it.
    const event = JSON.parse(second!.body) as { type: string; timestamp: string; data: unknown };
    const job = await (await call(`/jobs/${jobId}`, { headers: user.headers })).json();
    expect(event).toEqual({
      type: "job.done",
      timestamp: (await jobs.get(new ObjectId(jobId)))!.finishedAt!.toISOString(),
      data: job,
    });
    // Signed with another secret, or with the body changed, the library refuses it.
    expect(() => verified(`whsec_${Buffer.alloc(32, 7).toString("base64")}`, second!)).toThrow();
    expect(() => verified(webhook.secret, { ...second!, body: second!.body.replace("done", "gone") })).toThrow();

    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({
      id: first!.headers["webhook-id"],
      event: "job.done",
      jobId,
      state: "delivered",
      attempts: 2,
      lastStatus: 200,
      deliveredAt: expect.any(String),
    });
    expect(delivery!.tries.map((tried) => tried.status)).toEqual([500, 200]);
    expect(delivery!.nextAttemptAt).toBeUndefined();
  });

  test("a failed job is posted as job.failed with the reason; a webhook of job.done only is not posted it", async () => {
    const user = await newUser();
    const both = await registered(user);
    const doneOnly = await registered(user, ["job.done"]);
    const jobId = await finished(user, "failed");
    // Both webhooks were looked at once, by the same look-up: the one that asked was written, so the other was not.
    await logged("webhook.delivered", both.id, jobId);
    const [request] = receiver.at(both.path);
    const event = verified(both.secret, request!) as { type: string; data: { status: string; error: string } };
    expect(event.type).toBe("job.failed");
    expect(event.data).toMatchObject({ status: "failed", error: "the video has no audio track" });
    expect(await deliveries(user, doneOnly.id)).toEqual([]);
    expect(receiver.at(doneOnly.path)).toEqual([]);
  });

  test("a redelivered `mp3` message queues nothing twice", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const jobId = await finished(user, "done");
    await logged("webhook.delivered", webhook.id, jobId);
    await stack.queue.publish(QUEUES.mp3, { jobId, status: "done" }, { messageId: `${jobId}-done-again` });
    await logged("webhook.duplicate", webhook.id, jobId);
    expect(await deliveries(user, webhook.id)).toHaveLength(1);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("a redirect is not followed: the 302 is a failed try, and the delivery is given up after the schedule", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, { redirect: "/elsewhere" });
    const jobId = await finished(user, "done");
    const givenUp = await logged("webhook.given_up", webhook.id, jobId);
    expect(givenUp).toMatchObject({ status: 302, attempt: 4 });
    expect(receiver.at("/elsewhere")).toEqual([]);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({ state: "given_up", attempts: 4, lastStatus: 302, givenUpAt: expect.any(String) });
    expect(delivery!.tries).toHaveLength(4);
    expect(delivery!.tries[0]).toMatchObject({ status: 302, error: "redirects are not followed" });
    expect(new Set(receiver.at(webhook.path).map((request) => request.headers["webhook-id"])).size).toBe(1);
  });

  test("no answer within WEBHOOK_TIMEOUT_MS is a failed try; the next one delivers", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, ["hang"]);
    const jobId = await finished(user, "done");
    const failed = await logged("webhook.failed", webhook.id, jobId);
    expect(failed.reason).toBe("no answer within 400 ms");
    await logged("webhook.delivered", webhook.id, jobId);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery!.tries).toEqual([
      { at: expect.any(String), error: "no answer within 400 ms" },
      { at: expect.any(String), status: 200 },
    ]);
  });

  test("answered 500 every time: four tries (the schedule's three retries), then given up, and counted", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, 500);
    const jobId = await finished(user, "done");
    await logged("webhook.given_up", webhook.id, jobId);
    expect(receiver.at(webhook.path)).toHaveLength(4);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({ state: "given_up", attempts: 4, lastStatus: 500 });
    expect(delivery!.nextAttemptAt).toBeUndefined();
    const metrics = await (await notifier.service.metricsApp.handle(new Request("http://localhost/metrics"))).text();
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="given_up"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="failed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="delivered"[^}]*\} [1-9]/);
  });

  test("410 Gone gives up at once: the receiver wants no more of it", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, 410);
    const jobId = await finished(user, "done");
    await logged("webhook.given_up", webhook.id, jobId);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("DELETE stops deliveries: the waiting ones go, and a later job queues none", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const kept = await registered(user);
    receiver.answerAlways(webhook.path, 503);
    const first = await finished(user, "done");
    await logged("webhook.failed", webhook.id, first);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect(await webhooks.deliveries.countDocuments({ webhookId: new ObjectId(webhook.id) })).toBe(0);
    expect((await call(`/webhooks/${webhook.id}/deliveries`, { headers: user.headers })).status).toBe(404);
    const later = await finished(user, "done");
    await logged("webhook.queued", kept.id, later); // queued in the same pass as the deleted one would be
    expect(await webhooks.deliveries.countDocuments({ webhookId: new ObjectId(webhook.id) })).toBe(0);
    expect(receiver.at(webhook.path).map((request) => JSON.parse(request.body).data.id)).not.toContain(later);
  });
});

describe("addresses at delivery", () => {
  test("a name that turns private after registration is refused at delivery, never connected to, then given up", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    notifierDns.set(webhook.host, ["10.20.30.40"]);
    const jobId = await finished(user, "done");
    const refused = await logged("webhook.refused", webhook.id, jobId);
    expect(refused).toMatchObject({ address: "10.20.30.40", range: "private" });
    await logged("webhook.given_up", webhook.id, jobId);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery!.lastError).toContain("private address");
    expect(delivery!.lastStatus).toBeUndefined();
    expect(receiver.at(webhook.path)).toEqual([]);
  });

  test("the connection goes to the address that was checked: a name answering differently on a second look-up is not looked up again", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    // Rebinding: the first answer passes the check; any later one is a loopback address URL_ALLOW_HOSTS does not
    // open and where nothing listens. Delivered on the first try means the checked address was the one used.
    notifierDns.set(webhook.host, ["127.0.0.1"], ["127.0.0.2"]);
    const jobId = await finished(user, "done");
    const delivered = await logged("webhook.delivered", webhook.id, jobId);
    expect(delivered.attempt).toBe(1);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("a name with one private address among public ones is refused whole", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    notifierDns.set(webhook.host, ["127.0.0.1", "169.254.169.254"]);
    const jobId = await finished(user, "done");
    expect(await logged("webhook.refused", webhook.id, jobId)).toMatchObject({ range: "metadata" });
    expect(receiver.at(webhook.path)).toEqual([]);
  });
});

describe("durable and shared", () => {
  test("a delivery waiting to be retried outlasts its notifier: the next one delivers it with the same webhook-id", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, [500]);
    await notifier.stop();
    // A notifier whose retries wait long: it tries once and is stopped while the retry waits.
    const slow = await (async () => {
      const queue = await connectQueue(stack.vhost.url, stack.log);
      const service = createNotifier({
        config: parseConfig(NotifierConfig, {
          MONGODB_URL: stack.mongoUrl,
          AMQP_URL: stack.vhost.url,
          ...NOTIFIER_ENV,
          WEBHOOK_RETRY_SCHEDULE_MS: "1500",
        }),
        log: createLogger("notifier", "info", { write: (line: string) => void notifierLines.push(JSON.parse(line)) }),
        mongo: stack.mongo,
        queue,
        resolve: notifierDns.resolve,
      });
      await service.start();
      return { service, queue };
    })();
    const jobId = await finished(user, "done");
    await logged("webhook.failed", webhook.id, jobId);
    await slow.service.stop();
    await slow.queue.close();
    notifier = await notifierOfItsOwn();
    await logged("webhook.delivered", webhook.id, jobId);
    const requests = receiver.at(webhook.path);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.headers["webhook-id"]).toBe(requests[0]!.headers["webhook-id"]!);
  });

  test("two notifiers at once deliver each event once", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const second = await notifierOfItsOwn();
    try {
      const ids = [];
      for (let n = 0; n < 6; n++) ids.push(await finished(user, "done"));
      for (const jobId of ids) await logged("webhook.delivered", webhook.id, jobId);
      const requests = receiver.at(webhook.path);
      expect(requests).toHaveLength(6);
      expect(new Set(requests.map((request) => request.headers["webhook-id"])).size).toBe(6);
      expect(new Set(requests.map((request) => JSON.parse(request.body).data.id))).toEqual(new Set(ids));
    } finally {
      await second.stop();
    }
  });
});

describe("OpenAPI", () => {
  test("the webhook routes and the posted event are described", async () => {
    const spec = (await (await call("/docs/json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
      webhooks: Record<string, unknown>;
      components: { schemas: Record<string, { examples?: unknown[] }> };
    };
    expect(Object.keys(spec.paths["/webhooks"]!)).toEqual(expect.arrayContaining(["post", "get"]));
    expect(Object.keys(spec.paths["/webhooks/{id}"]!)).toContain("delete");
    expect(Object.keys(spec.paths["/webhooks/{id}/deliveries"]!)).toContain("get");
    expect(Object.keys(spec.webhooks)).toEqual(["job.done", "job.failed"]);
    for (const name of ["NewWebhook", "CreatedWebhook", "WebhookDeliveries", "WebhookEvent"])
      expect(spec.components.schemas[name], name).toBeDefined();
    expect(spec.components.schemas.CreatedWebhook!.examples).toHaveLength(1);
  });
});
