// Accounts a person can live with (issue 18), through the gateway as a person uses them, in
// one process (test/support/accounts-stack.ts: auth on a port, the gateway in-process, real
// MariaDB and RabbitMQ, MongoDB or its stand-in, the notifier and a converter, and the local
// Resend stand-in receiving the emails). Email verification, the email outbox and password
// reset; test/accounts.test.ts has sessions and deletion, test/faults/accounts.test.ts runs them as processes.
import { describe, expect, test } from "bun:test";
import { emailTokenId } from "../lib/messages.ts";
import { claimsOf, emailsTo, linkToken } from "./support/accounts.ts";
import { emailed, PUBLIC_URL, registered, resend, stack, steps, useAccountsStack } from "./support/accounts-stack.ts";

useAccountsStack();

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
