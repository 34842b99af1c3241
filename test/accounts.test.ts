// Accounts a person can live with (issue 18), through the gateway as a person uses them, in
// one process (test/support/accounts-stack.ts: auth on a port, the gateway in-process, real
// MariaDB and RabbitMQ, MongoDB or its stand-in, the notifier and a converter, and the local
// Resend stand-in receiving the emails). Sessions, password change, account deletion and the
// OpenAPI document of the account routes; test/accounts-email.test.ts has verification and
// password reset, test/faults/accounts.test.ts runs them as processes.
import { describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import {
  claimsOf,
  furnish,
  mongoDocumentsOf,
  mysqlRowsOf,
  NOTHING_IN_MONGODB,
  NOTHING_IN_MYSQL,
  PASSWORD,
} from "./support/accounts.ts";
import { converterLog, registered, stack, steps, useAccountsStack } from "./support/accounts-stack.ts";
import { makeVideo } from "./support/media.ts";

useAccountsStack();

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
    expect(await mysqlRowsOf(stack.database.url, person.id, person.email)).toEqual(NOTHING_IN_MYSQL);
    expect(await mongoDocumentsOf(stack.mongo.db, person.id)).toEqual(NOTHING_IN_MONGODB);
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
