// Accounts with the services as processes (the shared fault system): the verification
// email goes from auth through the `email` queue and the notifier to the Resend stand-in,
// and is all an unverified address gets; an account deletion killed between its steps
// (auth after marking the account, before the broker took the message; a converter in the
// middle of removing the data) is finished once the killed service is back, leaving
// nothing of the user in MySQL, MongoDB or GridFS.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Db, MongoClient } from "mongodb";
import {
  type AccountSteps,
  accountSteps,
  claimsOf,
  emailsTo,
  furnish,
  linkToken,
  mongoDocumentsOf,
  mysqlRowsOf,
  NOTHING_IN_MONGODB,
  NOTHING_IN_MYSQL,
} from "../support/accounts.ts";
import type { GatewayClient } from "../support/client.ts";
import type { LogEntry, ServiceProcess } from "../support/system.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;
let steps: AccountSteps;
let mongo: MongoClient;
let db: Db;

beforeAll(async () => {
  ({ system, video, http } = await faultSetup({ videoSeconds: 1 }));
  steps = accountSteps((path, init) => http.call(path, init));
  mongo = new MongoClient(system.mongoUrl); // direct, not through the proxy a test cuts
  db = mongo.db();
}, 90_000);
afterAll(() => mongo?.close());

/** Registers; answers the id, email and the verification email as the Resend stand-in got it. */
async function registered(prefix: string) {
  const email = steps.newEmail(prefix);
  const answer = await steps.register(email);
  expect(answer.status).toBe(201);
  const { id } = (await answer.json()) as { id: number };
  const userId = String(id);
  await system.waitForLog(
    "notifier",
    (entry) => entry.event === "email.sent" && entry.userId === userId && entry.kind === "verify",
  );
  const [verification] = emailsTo(system.resend!.received, email, "verify");
  return { id: userId, email, verification: verification! };
}

/** The first line of any converter's log that `match` accepts, with the converter that wrote it. */
function anyConverterLogs(match: (entry: LogEntry) => boolean, timeoutMs = 20_000) {
  const converters = system.services.filter((service) => service.name === "converter");
  return Promise.any(
    converters.map(
      async (converter): Promise<[ServiceProcess, LogEntry]> => [
        converter,
        await system.waitForLog(converter, match, timeoutMs),
      ],
    ),
  );
}

describe("the verification email, through the queue and the notifier", () => {
  test("arrives, verifies the address, and is the only email an unverified address gets", async () => {
    const person = await registered("verify-me");
    expect(person.verification.subject).toBe("Confirm your email address for m3dio");
    expect(person.verification.text).toContain(`${system.gatewayUrl}/verify?token=`);

    // unverified: a conversion's end is not emailed
    const session = await steps.session(person.email);
    const user = { headers: { authorization: `Bearer ${session.token}` } };
    const job = await http.upload(user, video, "unverified.mp4");
    expect(await http.finished(user, job.id)).toMatchObject({ status: "done" });
    await system.waitForLog(
      "notifier",
      (entry) => entry.event === "email.skipped_unverified" && entry.jobId === job.id,
    );
    expect(emailsTo(system.resend!.received, person.email)).toHaveLength(1);

    expect((await steps.verify(linkToken(person.verification, "verify"))).status).toBe(200);
    const refreshed = await steps.refresh(session.refreshToken);
    expect(refreshed.status).toBe(200);
    expect(claimsOf(((await refreshed.json()) as { token: string }).token).email_verified).toBe(true);
  });
});

describe("an account deletion killed halfway is finished", () => {
  test("auth killed after marking the account, before the broker took the message: finished when auth is back", async () => {
    const person = await registered("auth-killed");
    await furnish(db, person.id, person.email);
    const { token } = await steps.session(person.email);

    // The broker away: the deletion stops after its first step, and auth dies there.
    await system.proxies.rabbitmq!.cut();
    const deleting = steps.deleteAccount(token).catch((error: Error) => error);
    await system.waitForLog("auth", (entry) => entry.event === "account.deleting" && entry.userId === person.id);
    await system.kill("auth", "SIGKILL");
    await deleting; // the gateway's answer to a request auth died on (503), whatever it was
    expect((await mysqlRowsOf(system.mysqlUrl, person.id, person.email)).users).toBe(1); // marked, not gone
    expect((await steps.login(person.email)).status).toBe(503); // auth is down

    await system.proxies.rabbitmq!.restore();
    const auth = await system.start("auth");
    await system.waitForLog(auth, (entry) => entry.event === "account.purged" && entry.userId === person.id, 20_000);
    await anyConverterLogs((entry) => entry.event === "account.deleted" && entry.userId === person.id);
    expect(await mysqlRowsOf(system.mysqlUrl, person.id, person.email)).toEqual(NOTHING_IN_MYSQL);
    expect(await mongoDocumentsOf(db, person.id)).toEqual(NOTHING_IN_MONGODB);
    expect((await steps.login(person.email)).status).toBe(401);
  }, 90_000);

  test("a converter killed while it removes the account's data: another (or it, restarted) finishes", async () => {
    const person = await registered("converter-killed");
    await furnish(db, person.id, person.email, 3);
    const { token } = await steps.session(person.email);

    // MongoDB away: the converter that takes the message stops inside its removal, and dies there.
    await system.proxies.mongodb!.cut();
    expect((await steps.deleteAccount(token)).status).toBe(204); // auth's part needs no MongoDB
    const [removing] = await anyConverterLogs(
      (entry) => entry.event === "account.removing" && entry.userId === person.id,
    );
    await system.kill(removing, "SIGKILL");
    expect((await mongoDocumentsOf(db, person.id)).jobs).toBe(3); // nothing was removed yet

    await system.proxies.mongodb!.restore();
    await system.start("converter", removing.index);
    await anyConverterLogs((entry) => entry.event === "account.deleted" && entry.userId === person.id, 60_000);
    expect(await mysqlRowsOf(system.mysqlUrl, person.id, person.email)).toEqual(NOTHING_IN_MYSQL);
    expect(await mongoDocumentsOf(db, person.id)).toEqual(NOTHING_IN_MONGODB);
  }, 120_000);
});
