// The webhook tests' harness (test/webhooks.test.ts, test/webhook-delivery.test.ts), in one
// process: the stack's stores (real MariaDB and RabbitMQ, MongoDB or its stand-in), an auth
// on a port sharing GATEWAY_SECRET with a gateway of the harness's own (so API keys work too),
// a notifier that delivers to a local HTTP receiver answering as each test scripts it, and a
// job's end announced on `mp3` as the converter does. Signatures are checked with the
// `standardwebhooks` package (the specification's own library), not with our signing code.
// DNS is a resolver hook (names under .test only it knows), one for the gateway and one for
// the notifier, so the address rules are tested on the addresses really connected to.
import { expect } from "bun:test";
import { ObjectId } from "mongodb";
import { Webhook } from "standardwebhooks";
import { createAuth } from "../../auth.ts";
import { jwksVerifier } from "../../gateway/bearer.ts";
import { parseConfig } from "../../lib/config.ts";
import { jobStore } from "../../lib/jobs.ts";
import type { ResolvedAddress, Resolver } from "../../lib/link.ts";
import { createLogger } from "../../lib/log.ts";
import { connectQueue, QUEUES, type Queue } from "../../lib/queue.ts";
import { webhookStore } from "../../lib/webhooks.ts";
import { createNotifier, NotifierConfig } from "../../notifier.ts";
import { authTestConfig, TEST_GATEWAY_SECRET } from "./auth.ts";
import { type Stack, startStack } from "./stack.ts";

export interface LogLine {
  event?: string;
  [field: string]: unknown;
}
export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}
type Answer = number | "hang" | { redirect: string };

/** The receiver: records every request; answers each path's scripted answers in turn, then 200. */
export function startReceiver() {
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
export function testDns() {
  const names = new Map<string, string[][]>();
  const resolve: Resolver = async (hostname) => {
    const answers = names.get(hostname);
    if (!answers) throw Object.assign(new Error(`${hostname} not found`), { code: "ENOTFOUND" });
    const next = answers.length > 1 ? answers.shift()! : answers[0]!;
    return next.map((address): ResolvedAddress => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return { resolve, set: (hostname: string, ...answers: string[][]) => names.set(hostname, answers) };
}

/** A delivery as GET /webhooks/:id/deliveries answers it. */
export interface DeliveryAnswer {
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

/** Test-sized: a try waits 400 ms for an answer, and three retries 50 ms apart end a delivery. */
const NOTIFIER_ENV = { URL_ALLOW_HOSTS: "127.0.0.1", WEBHOOK_TIMEOUT_MS: "400", WEBHOOK_RETRY_SCHEDULE_MS: "50,50,50" };

/** Checks a request with the specification's library: throws unless the signature is the secret's. */
export const verified = (secret: string, request: Received) =>
  new Webhook(secret).verify(request.body, request.headers);

export type WebhookHarness = ReturnType<typeof webhookHarness>;

/** The harness; `start()` in beforeAll, `stop()` in afterAll. */
export function webhookHarness() {
  const receiver = startReceiver();
  const gatewayDns = testDns();
  const notifierDns = testDns();
  const notifierLines: LogLine[] = [];
  let stack: Stack;
  let auth: Awaited<ReturnType<typeof createAuth>>;
  let gatewayEnv: { AUTH_URL: string; GATEWAY_SECRET: string };
  let gateway: ReturnType<Stack["gatewayWith"]>;
  let notifier: Awaited<ReturnType<typeof notifierOfItsOwn>> | undefined;
  let people = 0;
  let hosts = 0;

  /** A gateway on the stack's stores that asks the harness's auth (for keys and tokens), DNS the test's. */
  function gatewayOfItsOwn(env: Record<string, string>) {
    const verifier = jwksVerifier(`${gatewayEnv.AUTH_URL}/.well-known/jwks.json`);
    return stack.gatewayWith({ ...gatewayEnv, ...env }, { verifier, resolve: gatewayDns.resolve });
  }

  /** A notifier (test-sized, `env` over it) with a broker connection of its own, its lines kept in `notifierLines`. */
  async function notifierOfItsOwn(env: Record<string, string> = {}) {
    const queue: Queue = await connectQueue(stack.vhost.url, stack.log);
    const service = createNotifier({
      config: parseConfig(NotifierConfig, {
        MONGODB_URL: stack.mongoUrl,
        AMQP_URL: stack.vhost.url,
        ...NOTIFIER_ENV,
        ...env,
      }),
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

  const call = (path: string, init: RequestInit = {}, app = gateway.app) => stack.call(path, init, app);
  const postJson = (path: string, body: unknown, headers: Record<string, string>, app = gateway.app) =>
    call(
      path,
      { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(body) },
      app,
    );

  /** A user registered and logged in through the harness's gateway, with their id (the token's subject). */
  async function newUser() {
    const email = `hooks${++people}.${process.pid}.${Date.now()}@example.com`;
    const credentials = { email, password: "a good password" };
    expect((await postJson("/auth/register", credentials, {})).status).toBe(201);
    const { token } = (await (await postJson("/auth/login", credentials, {})).json()) as { token: string };
    const { sub } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { sub: string };
    return { email, token, id: sub, headers: { authorization: `Bearer ${token}` } };
  }
  type User = Awaited<ReturnType<typeof newUser>>;

  /** Registers a webhook at a fresh name (resolving to the receiver) and path; answers it with its secret. */
  async function registered(user: User, events?: string[]) {
    const host = `hooks${++hosts}.test`;
    gatewayDns.set(host, ["127.0.0.1"]);
    notifierDns.set(host, ["127.0.0.1"]);
    const path = `/hook/${hosts}`;
    const url = `http://${host}:${receiver.port}${path}`;
    const answer = await postJson("/webhooks", { url, ...(events ? { events } : {}) }, user.headers);
    expect(answer.status).toBe(201);
    const webhook = (await answer.json()) as { id: string; url: string; events: string[]; secret: string };
    return { ...webhook, host, path };
  }

  /** A job of the user's, finished as the converter leaves one and announced on `mp3`. */
  async function finished(user: User, status: "done" | "failed") {
    const jobs = jobStore(stack.mongo.db);
    const job = await jobs.create({
      userId: user.id,
      email: user.email,
      source: { kind: "upload", filename: "talk.mp4", bytes: 1234, contentType: "video/mp4" },
    });
    await jobs.startConverting(job._id);
    if (status === "done") await jobs.markDone(job._id, new ObjectId(), { bytes: 4096, durationSec: 12.5 });
    else await jobs.markFailed(job._id, "the video has no audio track");
    const jobId = job._id.toHexString();
    await announce(jobId, status);
    return jobId;
  }
  /** Publishes the job's end on `mp3` (again, with another message id, for a redelivery). */
  const announce = (jobId: string, status: "done" | "failed", messageId = `${jobId}-${status}`) =>
    stack.queue.publish(QUEUES.mp3, { jobId, status }, { messageId });

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
  async function deliveries(user: User, webhookId: string): Promise<DeliveryAnswer[]> {
    const answer = await call(`/webhooks/${webhookId}/deliveries`, { headers: user.headers });
    expect(answer.status).toBe(200);
    return ((await answer.json()) as { items: DeliveryAnswer[] }).items;
  }

  return {
    receiver,
    gatewayDns,
    notifierDns,
    notifierLines,
    call,
    postJson,
    newUser,
    registered,
    finished,
    announce,
    /** The job as stored. */
    job: (jobId: string) => jobStore(stack.mongo.db).get(new ObjectId(jobId)),
    logged,
    deliveries,
    gatewayOfItsOwn,
    notifierOfItsOwn,
    /** The deliveries in MongoDB, to see what no route shows (after a DELETE). */
    deliveryStore: () => webhookStore(stack.mongo.db).deliveries,
    /** The running notifier (replaced by `restartNotifier`). */
    notifier: () => notifier!,
    /** Stops the running notifier; `then` runs before a fresh one starts. */
    async restartNotifier(then: () => Promise<void> = async () => {}) {
      await notifier?.stop();
      notifier = undefined;
      await then();
      notifier = await notifierOfItsOwn();
    },
    async start() {
      stack = await startStack();
      // An auth that trusts the harness's gateway (GATEWAY_SECRET): it answers the gateway about API keys.
      auth = await createAuth({
        config: authTestConfig(stack.database.url, { GATEWAY_SECRET: TEST_GATEWAY_SECRET }),
        queue: stack.queue,
      });
      auth.app.listen({ port: 0, hostname: "127.0.0.1" });
      gatewayEnv = { AUTH_URL: `http://127.0.0.1:${auth.app.server!.port}`, GATEWAY_SECRET: TEST_GATEWAY_SECRET };
      // The receiver is on 127.0.0.1, which only URL_ALLOW_HOSTS opens; other private addresses stay shut.
      gateway = gatewayOfItsOwn({ URL_ALLOW_HOSTS: "127.0.0.1" });
      await gateway.start();
      notifier = await notifierOfItsOwn();
    },
    async stop() {
      await notifier?.stop();
      await auth?.app.stop();
      await auth?.close();
      await stack?.stop();
      receiver.stop();
    },
  };
}
