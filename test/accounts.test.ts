// Accounts a person can live with (issue 18), through the gateway as a person uses them, in
// one process: auth on a port, the gateway in-process, real MariaDB and RabbitMQ (a vhost of
// this file's own), MongoDB (or its stand-in), the notifier and a converter in-process, and
// the local Resend stand-in receiving the emails. Verification, password reset, sessions,
// password change and account deletion; test/faults/accounts.test.ts runs them as processes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { ConverterConfig, createConverter } from "../converter.ts";
import { parseConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { emailTokenId } from "../lib/messages.ts";
import { createNotifier, NotifierConfig } from "../notifier.ts";
import {
  accountSteps,
  claimsOf,
  emailsTo,
  furnish,
  linkToken,
  mongoDocumentsOf,
  mysqlRowsOf,
  PASSWORD,
} from "./support/accounts.ts";
import { makeVideo } from "./support/media.ts";
import { startResendStandin } from "./support/resend.ts";
import { type Stack, startStack } from "./support/stack.ts";

const PUBLIC_URL = "http://m3dio.test";

interface LogLine {
  event?: string;
  [field: string]: unknown;
}

/** A logger whose lines are kept, and a wait for the first line `match` accepts. */
function keptLog(service: string) {
  const lines: LogLine[] = [];
  const log = createLogger(service, "debug", { write: (line: string) => void lines.push(JSON.parse(line)) });
  async function waitFor(match: (line: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} in the ${service} log within ${timeoutMs} ms`);
      await Bun.sleep(20);
    }
  }
  return { log, lines, waitFor };
}

let stack: Stack;
let resend: ReturnType<typeof startResendStandin>;
let notifier: ReturnType<typeof createNotifier>;
let converter: ReturnType<typeof createConverter>;
let tmp: string;
const notifierLog = keptLog("notifier");
const converterLog = keptLog("converter");
let steps: ReturnType<typeof accountSteps>;

beforeAll(async () => {
  stack = await startStack();
  resend = startResendStandin();
  tmp = mkdtempSync(join(tmpdir(), "m3dio-accounts-"));
  const stores = { MONGODB_URL: stack.mongoUrl, AMQP_URL: stack.vhost.url };
  notifier = createNotifier({
    config: parseConfig(NotifierConfig, {
      ...stores,
      PUBLIC_URL,
      RESEND_API_KEY: "re_test_accounts",
      RESEND_BASE_URL: resend.url,
      MAIL_FROM: "m3dio <mp3@m3dio.test>",
      RETRY_BASE_MS: "50",
    }),
    log: notifierLog.log,
    mongo: stack.mongo,
    queue: stack.queue,
  });
  converter = createConverter({
    config: parseConfig(ConverterConfig, { ...stores, TMP_DIR: tmp }),
    log: converterLog.log,
    mongo: stack.mongo,
    queue: stack.queue,
  });
  await notifier.start();
  await converter.start();
  steps = accountSteps((path, init) => stack.call(path, init));
});
afterAll(async () => {
  await converter?.stop();
  await notifier?.stop();
  await stack?.stop();
  resend?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The emails of `kind` the notifier sent to `to`, once it logged that many sends for the user. */
async function emailed(userId: string, to: string, kind: "verify" | "reset", count = 1) {
  await notifierLog.waitFor(
    () =>
      notifierLog.lines.filter((l) => l.event === "email.sent" && l.userId === userId && l.kind === kind).length >=
      count,
    `${count} ${kind} email(s) to user ${userId}`,
  );
  return emailsTo(resend.received, to, kind);
}

/** Registers an account; answers its id, email and verification token (read from the email). */
async function registered(prefix = "person") {
  const email = steps.newEmail(prefix);
  const answer = await steps.register(email);
  expect(answer.status).toBe(201);
  const { id } = (await answer.json()) as { id: number };
  const [verification] = await emailed(String(id), email, "verify");
  return { id: String(id), email, verifyToken: linkToken(verification!, "verify") };
}

describe("verification", () => {
  test("registering answers {id, email, verified: false} and sends one verification email with a working link", async () => {
    const email = steps.newEmail("ada");
    const answer = await steps.register(email);
    expect(answer.status).toBe(201);
    const body = (await answer.json()) as { id: number; email: string; verified: boolean };
    expect(body).toEqual({ id: expect.any(Number), email, verified: false });

    const [verification, ...more] = await emailed(String(body.id), email, "verify");
    expect(more).toEqual([]);
    expect(verification!.subject).toBe("Confirm your email address for m3dio");
    expect(verification!.from).toBe("m3dio <mp3@m3dio.test>");
    const token = linkToken(verification!, "verify");
    expect(verification!.text).toContain(`${PUBLIC_URL}/verify?token=${token}`);
    expect(verification!.html).toContain(`href="${PUBLIC_URL}/verify?token=${token}"`);
    expect(verification!.idempotencyKey).toBe(`email-verify-${emailTokenId(token)}`);
    // the only email an unverified address has had
    expect(emailsTo(resend.received, email)).toHaveLength(1);

    const session = await steps.session(email);
    expect(claimsOf(session.token).email_verified).toBe(false);
    const verified = await steps.verify(token);
    expect(verified.status).toBe(200);
    expect(await verified.json()).toEqual({ verified: true });
    // the access token in hand is as it was; the next one says verified
    const refreshed = await steps.refresh(session.refreshToken);
    expect(refreshed.status).toBe(200);
    expect(claimsOf(((await refreshed.json()) as { token: string }).token).email_verified).toBe(true);
    // a link works once
    const again = await steps.verify(token);
    expect(again.status).toBe(422);
    expect(((await again.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(["token"]);
  });

  test("a token that never was, or is malformed, is 422 naming the token", async () => {
    for (const token of ["PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY", "short"]) {
      const answer = await steps.verify(token);
      expect(answer.status).toBe(422);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
      expect(((await answer.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(["token"]);
    }
  });

  test("resending is once per 10 minutes (registration's counts): 429 with Retry-After; 409 once verified; 401 without a token", async () => {
    const person = await registered("resend");
    const { token } = await steps.session(person.email);
    const refused = await steps.resend(token);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(540);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect(emailsTo(resend.received, person.email)).toHaveLength(1);

    expect((await steps.verify(person.verifyToken)).status).toBe(200);
    expect((await steps.resend(token)).status).toBe(409);
    expect((await steps.resend("")).status).toBe(401);
  });

  test("a resend once the 10 minutes are over sends a second link; both work until one is used", async () => {
    const person = await registered("resend-later");
    // as if the registration's email went out 11 minutes ago
    const { createConnection } = await import("mysql2/promise");
    const connection = await createConnection({ uri: stack.database.url, timezone: "Z" });
    await connection.query("UPDATE email_tokens SET created_at = created_at - INTERVAL 11 MINUTE WHERE user_id = ?", [
      person.id,
    ]);
    await connection.end();
    const { token } = await steps.session(person.email);
    expect((await steps.resend(token)).status).toBe(202);
    const [, second] = await emailed(person.id, person.email, "verify", 2);
    expect(linkToken(second!, "verify")).not.toBe(person.verifyToken);
    expect((await steps.verify(linkToken(second!, "verify"))).status).toBe(200);
    expect((await steps.verify(person.verifyToken)).status).toBe(422); // one opened makes the others moot
  });
});

describe("the email outbox", () => {
  test("a link whose message the broker never confirmed is sent by the sweeper, with a new token", async () => {
    const person = await registered("outbox");
    // as if auth had died between storing the token and the broker's confirm, two minutes ago
    const { createConnection } = await import("mysql2/promise");
    const connection = await createConnection({ uri: stack.database.url, timezone: "Z" });
    await connection.query(
      "UPDATE email_tokens SET published_at = NULL, created_at = created_at - INTERVAL 2 MINUTE WHERE user_id = ?",
      [person.id],
    );
    await connection.end();
    await stack.auth.sweep();
    const [, resent] = await emailed(person.id, person.email, "verify", 2);
    const token = linkToken(resent!, "verify");
    expect(token).not.toBe(person.verifyToken);
    expect((await steps.verify(person.verifyToken)).status).toBe(422); // the old value is dead
    expect((await steps.verify(token)).status).toBe(200);
  });
});

describe("password reset", () => {
  test("forgot → reset email → reset: every session ends, the lockout lifts, the new password works", async () => {
    const person = await registered("forgetful");
    const before = await steps.session(person.email);
    // locked out from this address by wrong guesses
    for (let i = 0; i < 5; i++) expect((await steps.login(person.email, "a wrong guess")).status).toBe(401);
    expect((await steps.login(person.email)).status).toBe(429);

    const asked = await steps.forgot(person.email.toUpperCase());
    expect(asked.status).toBe(202);
    const [reset, ...more] = await emailed(person.id, person.email, "reset");
    expect(more).toEqual([]);
    expect(reset!.subject).toBe("Reset your m3dio password");
    const token = linkToken(reset!, "reset");
    expect(reset!.text).toContain(`${PUBLIC_URL}/reset?token=${token}`);
    expect(reset!.idempotencyKey).toBe(`email-reset-${emailTokenId(token)}`);

    expect((await steps.reset(token, "short")).status).toBe(422); // the new password's rule, naming it
    const done = await steps.reset(token, "a brand new password");
    expect(done.status).toBe(204);
    expect((await steps.refresh(before.refreshToken)).status).toBe(401);
    expect((await steps.login(person.email)).status).toBe(401);
    const after = await steps.session(person.email, "a brand new password");
    expect(claimsOf(after.token).email_verified).toBe(true); // the link proved the address
    expect((await steps.reset(token, "yet another password")).status).toBe(422); // single-use
  });

  test("an address with no account gets the same answer, in about the same time", async () => {
    const person = await registered("timing");
    const unknown = steps.newEmail("nobody");
    const known: number[] = [];
    const stranger: number[] = [];
    const answers: Response[] = [];
    for (let i = 0; i < 9; i++)
      for (const [email, times] of [
        [person.email, known],
        [unknown, stranger],
      ] as const) {
        const started = performance.now();
        const answer = await steps.forgot(email);
        times.push(performance.now() - started);
        answers.push(answer);
      }
    const [first, second] = answers;
    expect([first!.status, second!.status]).toEqual([202, 202]);
    expect(await first!.text()).toBe(await second!.text());
    expect([...first!.headers.keys()].sort()).toEqual([...second!.headers.keys()].sort());
    expect(new Set(answers.map((answer) => answer.status))).toEqual(new Set([202]));
    const median = (times: number[]) => [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    // Generous: the answer comes before the address is looked up, so both are the same path.
    expect(Math.abs(median(known) - median(stranger))).toBeLessThan(50);
    // the known address got one email (asking again within a minute sends nothing more)
    expect(await emailed(person.id, person.email, "reset")).toHaveLength(1);
    expect(emailsTo(resend.received, unknown)).toEqual([]);
  });

  test("a reset link is checked before its password is hashed; a made-up one is 422", async () => {
    const answer = await steps.reset("PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY", "a brand new password");
    expect(answer.status).toBe(422);
    expect(((await answer.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(["token"]);
  });
});

describe("sessions", () => {
  test("a refresh gives a new pair and the old refresh token stops working; reusing it ends the whole session", async () => {
    const person = await registered("rotate");
    const first = await steps.session(person.email);
    expect(first.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Date(first.refreshExpiresAt).getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const answer = await steps.refresh(first.refreshToken);
    expect(answer.status).toBe(200);
    const second = (await answer.json()) as typeof first;
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(claimsOf(second.token).sub).toBe(person.id);

    const replay = await steps.refresh(first.refreshToken);
    expect(replay.status).toBe(401);
    expect(replay.headers.get("content-type")).toStartWith("application/problem+json");
    // the family is gone: the newest token of the session no longer works either
    expect((await steps.refresh(second.refreshToken)).status).toBe(401);
    // another login's session is its own
    const other = await steps.session(person.email);
    expect((await steps.refresh(other.refreshToken)).status).toBe(200);
  });

  test("logout ends the session (204, also again); another session goes on", async () => {
    const person = await registered("logout");
    const phone = await steps.session(person.email);
    const laptop = await steps.session(person.email);
    expect((await steps.logout(phone.refreshToken)).status).toBe(204);
    expect((await steps.refresh(phone.refreshToken)).status).toBe(401);
    expect((await steps.logout(phone.refreshToken)).status).toBe(204);
    expect((await steps.refresh(laptop.refreshToken)).status).toBe(200);
    expect((await steps.refresh("not a token")).status).toBe(422);
  });

  test("changing the password ends the other sessions, keeps this one, and needs the current password", async () => {
    const person = await registered("change");
    const here = await steps.session(person.email);
    const elsewhere = await steps.session(person.email);
    const wrong = await steps.changePassword(here.token, "not my password", "a brand new password");
    expect(wrong.status).toBe(403);
    expect(((await wrong.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual([
      "currentPassword",
    ]);
    expect((await steps.changePassword(here.token, PASSWORD, "short")).status).toBe(422);
    expect((await steps.changePassword("", PASSWORD, "a brand new password")).status).toBe(401);

    expect((await steps.changePassword(here.token, PASSWORD, "a brand new password")).status).toBe(204);
    expect((await steps.refresh(elsewhere.refreshToken)).status).toBe(401);
    expect((await steps.refresh(here.refreshToken)).status).toBe(200);
    expect((await steps.login(person.email)).status).toBe(401);
    expect((await steps.login(person.email, "a brand new password")).status).toBe(200);
  });
});

describe("deleting the account", () => {
  test("removes the user, every job, file, key and webhook, and every MySQL row; another user keeps theirs", async () => {
    const person = await registered("leaving");
    const neighbour = await registered("staying");
    await furnish(stack.mongo.db, person.id, person.email);
    await furnish(stack.mongo.db, neighbour.id, neighbour.email, 1);
    const { token, refreshToken } = await steps.session(person.email);
    expect((await steps.login(person.email, "a wrong guess")).status).toBe(401); // a login attempt row
    const mongoBefore = await mongoDocumentsOf(stack.mongo.db, person.id);
    expect(Object.values(mongoBefore).every((n) => n > 0)).toBe(true);
    const mysqlBefore = await mysqlRowsOf(stack.database.url, person.id, person.email);
    expect(Object.values(mysqlBefore).every((n) => n > 0)).toBe(true);

    const wrong = await steps.deleteAccount(token, "not my password");
    expect(wrong.status).toBe(403);
    expect(((await wrong.json()) as { errors: { field: string }[] }).errors.map((e) => e.field)).toEqual(["password"]);
    expect((await steps.deleteAccount(token)).status).toBe(204);

    await converterLog.waitFor((l) => l.event === "account.deleted" && l.userId === person.id, "account.deleted");
    expect(await mysqlRowsOf(stack.database.url, person.id, person.email)).toEqual({
      users: 0,
      login_attempts: 0,
      refresh_tokens: 0,
      email_tokens: 0,
    });
    expect(await mongoDocumentsOf(stack.mongo.db, person.id)).toEqual({
      jobs: 0,
      videos: 0,
      mp3s: 0,
      covers: 0,
      uploads: 0,
      api_keys: 0,
      webhooks: 0,
      job_slots: 0,
    });
    expect(await mongoDocumentsOf(stack.mongo.db, neighbour.id)).toEqual({
      jobs: 1,
      videos: 6, // the job's video and the partial upload, each a file and two chunks
      mp3s: 3,
      covers: 3,
      uploads: 2, // the record and its one chunk
      api_keys: 1,
      webhooks: 1,
      job_slots: 1,
    });
    // nothing of the account works any more; its address is free again
    expect((await steps.login(person.email)).status).toBe(401);
    expect((await steps.refresh(refreshToken)).status).toBe(401);
    expect((await steps.resend(token)).status).toBe(401);
    expect((await steps.register(person.email)).status).toBe(201);
  });

  test("a second deletion of the same data removes nothing more and fails nothing (the message is idempotent)", async () => {
    const person = await registered("twice");
    await furnish(stack.mongo.db, person.id, person.email, 1);
    const { token } = await steps.session(person.email);
    expect((await steps.deleteAccount(token)).status).toBe(204);
    await converterLog.waitFor((l) => l.event === "account.deleted" && l.userId === person.id, "account.deleted");
    await stack.queue.publish("account", { userId: person.id }, { messageId: `account-${person.id}` });
    await converterLog.waitFor(
      () => converterLog.lines.filter((l) => l.event === "account.deleted" && l.userId === person.id).length === 2,
      "the second account.deleted",
    );
    const second = converterLog.lines.filter((l) => l.event === "account.deleted" && l.userId === person.id)[1]!;
    expect([second.jobs, second.files]).toEqual([0, 0]);
  });
});

describe("a token that outlives its deleted account", () => {
  test("still makes a job at the gateway (tokens are checked there alone), which the converter removes unconverted", async () => {
    const person = await registered("late-token");
    const { token } = await steps.session(person.email);
    expect((await steps.deleteAccount(token)).status).toBe(204);
    await converterLog.waitFor((l) => l.event === "account.deleted" && l.userId === person.id, "account.deleted");

    const form = new FormData();
    form.append("file", new Blob([await Bun.file(await makeVideo({ seconds: 1 })).bytes()]), "late.mp4");
    const upload = await stack.call("/jobs", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(upload.status).toBe(202);
    const { id } = (await upload.json()) as { id: string };
    await converterLog.waitFor((l) => l.event === "job.owner_deleted" && l.jobId === id, "job.owner_deleted");
    expect(converterLog.lines.some((l) => l.event === "job.converting" && l.jobId === id)).toBe(false);
    const left = await mongoDocumentsOf(stack.mongo.db, person.id);
    expect([left.jobs, left.videos, left.mp3s, left.covers]).toEqual([0, 0, 0, 0]);
  });
});

describe("the gateway's OpenAPI document", () => {
  test("lists every account route with its body, answers and examples", async () => {
    const doc = (await (await stack.call("/docs/json")).json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>>;
      components: { schemas: Record<string, { examples?: unknown[] }> };
    };
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    const routes: [string, string, string[]][] = [
      ["/auth/register", "post", ["201", "409", "422"]],
      ["/auth/login", "post", ["200", "401", "429"]],
      ["/auth/verify", "post", ["200", "422"]],
      ["/auth/verify/resend", "post", ["202", "401", "409", "429"]],
      ["/auth/refresh", "post", ["200", "401", "422"]],
      ["/auth/logout", "post", ["204", "422"]],
      ["/auth/password/forgot", "post", ["202", "422"]],
      ["/auth/password/reset", "post", ["204", "422"]],
      ["/auth/password", "post", ["204", "401", "403", "422", "429"]],
      ["/auth/account", "delete", ["204", "401", "403", "422"]],
    ];
    for (const [path, method, statuses] of routes) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(Object.keys(operation!.responses)).toEqual(expect.arrayContaining(statuses));
      if (!path.endsWith("/resend")) expect(operation!.requestBody, `${path} body`).toBeDefined();
    }
    for (const model of ["Registered", "Session", "VerifyBody", "RefreshBody", "ForgotBody", "ResetBody"])
      expect(doc.components.schemas[model]?.examples?.length, model).toBeGreaterThan(0);
    expect(doc.components.schemas.ChangePasswordBody?.examples?.length).toBeGreaterThan(0);
    expect(doc.components.schemas.DeleteAccountBody?.examples?.length).toBeGreaterThan(0);
  });
});
