// The stack the in-process account tests share (test/accounts*.test.ts): auth on a port,
// the gateway in-process, real MariaDB and RabbitMQ (a vhost of the file's own), MongoDB
// (or its stand-in), the notifier and a converter in-process with their log lines kept, and
// the local Resend stand-in receiving the emails; with the steps that wait for those emails.
// The bindings are live: `useAccountsStack()` sets them in beforeAll and stops them in afterAll.
import { afterAll, beforeAll, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConverterConfig, createConverter } from "../../converter.ts";
import { parseConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { createNotifier, NotifierConfig } from "../../notifier.ts";
import { accountSteps, emailsTo, linkToken } from "./accounts.ts";
import { startResendStandin } from "./resend.ts";
import { type Stack, startStack } from "./stack.ts";

export const PUBLIC_URL = "http://m3dio.test";

export interface LogLine {
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

export let stack: Stack;
export let resend: ReturnType<typeof startResendStandin>;
export let steps: ReturnType<typeof accountSteps>;
export let notifierLog: ReturnType<typeof keptLog>;
export let converterLog: ReturnType<typeof keptLog>;

/** Starts the stack in beforeAll and stops it in afterAll of the calling test file. */
export function useAccountsStack() {
  let notifier: ReturnType<typeof createNotifier> | undefined;
  let converter: ReturnType<typeof createConverter> | undefined;
  let tmp: string | undefined;
  beforeAll(async () => {
    notifierLog = keptLog("notifier");
    converterLog = keptLog("converter");
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
}

/** The emails of `kind` the notifier sent to `to`, once it logged that many sends for the user. */
export async function emailed(userId: string, to: string, kind: "verify" | "reset", count = 1) {
  await notifierLog.waitFor(
    () =>
      notifierLog.lines.filter((l) => l.event === "email.sent" && l.userId === userId && l.kind === kind).length >=
      count,
    `${count} ${kind} email(s) to user ${userId}`,
  );
  return emailsTo(resend.received, to, kind);
}

/** Registers an account; answers its id, email and verification token (read from the email). */
export async function registered(prefix = "person") {
  const email = steps.newEmail(prefix);
  const answer = await steps.register(email);
  expect(answer.status).toBe(201);
  const { id } = (await answer.json()) as { id: number };
  const [verification] = await emailed(String(id), email, "verify");
  return { id: String(id), email, verifyToken: linkToken(verification!, "verify") };
}
