// Passwords: forgotten (an emailed reset link), reset with that link, and changed by
// their owner. Forgetting answers 202 at once, before it even looks the address up:
// whether an account exists, and what finding it costs, happens after the answer
// (auth/background.ts), so neither the answer nor its timing tells. A reset or a change
// ends the account's other sessions; a reset also lifts its lockout.

import { Elysia } from "elysia";
import type { Server } from "elysia/universal";
import { ChangePasswordBody, ForgotBody, ResetBody } from "../lib/account-models.ts";
import { limitedJson } from "../lib/json.ts";
import type { Logger } from "../lib/log.ts";
import { HttpProblem, TooManyRequests } from "../lib/problem.ts";
import { bearerCaller, type Caller } from "./access-tokens.ts";
import { HashingBusy, type LoginOutcome } from "./accounts.ts";
import type { AuthParts } from "./parts.ts";
import { linkNotWorking } from "./verification.ts";

/** A reset email at most this often per account: asking again sooner sends nothing (the answer is 202 all the same). */
export const RESET_EVERY_MS = 60_000;

/** A password the caller typed is not theirs: 403 naming the field (401 would say the token is bad). */
class WrongPassword extends HttpProblem {
  constructor(field: string) {
    super(403, "Forbidden", "the password is not right", { errors: [{ field, message: "is not your password" }] });
  }
}

/**
 * Checks the caller's password like a login from this client (the lockout counts it, a
 * success clears it): throws 403 naming `field` if wrong, 429 if locked, 503 if busy.
 */
export async function checkPassword(
  { accounts, gate, log }: Pick<AuthParts, "accounts" | "gate" | "log">,
  caller: Caller,
  password: string,
  { field, request, server }: { field: string; request: Request; server: Server | null },
): Promise<void> {
  const client = gate.admit("login", request, server);
  const outcome: LoginOutcome = await accounts.login(caller.email, password, client);
  if (outcome.kind === "busy") throw gate.hashingFull("login");
  if (outcome.kind === "locked")
    throw new TooManyRequests("too many wrong passwords from your address; try again later", outcome.retryAfterSeconds);
  if (outcome.kind === "wrong") {
    log.info({ event: "password.check_failed", userId: String(caller.id), field }, "wrong password given");
    throw new WrongPassword(field);
  }
}

/** After the 202: a reset link for the address, if it has an account and asked not too recently. */
async function sendReset({ accounts, sender }: AuthParts, log: Logger, email: string): Promise<void> {
  const user = await accounts.findByEmail(email);
  if (!user) return log.info({ event: "password.forgot_unknown" }, "reset asked for an address with no account");
  const throttled = await sender.send(user, "reset", RESET_EVERY_MS);
  if (throttled) log.info({ event: "password.reset_throttled", userId: String(user.id) }, "reset email sent lately");
}

export const passwordRoutes = (parts: AuthParts) => {
  const { log, accounts, sessions, emailTokens, tokens, gate, background } = parts;
  /** A new password's hash; 503 when every hashing slot is taken, as for a login. */
  const newHash = (password: string) =>
    accounts.hash(password).catch((error) => {
      throw error instanceof HashingBusy ? gate.hashingFull("login") : error;
    });
  return new Elysia({ name: "auth.passwords" })
    .use(bearerCaller(tokens, accounts))
    .post(
      "/password/forgot",
      ({ body, status }) => {
        background.run("the reset email", () => sendReset(parts, log, body.email));
        return status(202, undefined);
      },
      {
        parse: limitedJson(),
        body: ForgotBody,
        detail: { tags: ["auth"], summary: "Email a password reset link (202 whatever the address)" },
      },
    )
    .post(
      "/password/reset",
      async ({ body, status }) => {
        // The link is checked before the (costly) hash, and spent only once the hash is made.
        if (!(await emailTokens.holder("reset", body.token))) throw linkNotWorking("reset");
        const passwordHash = await newHash(body.password);
        const userId = await emailTokens.spend("reset", body.token);
        const user = userId === undefined ? undefined : await accounts.find(userId);
        if (!user) throw linkNotWorking("reset");
        await accounts.setPasswordHash(user.id, passwordHash);
        await sessions.revokeAll(user.id);
        await accounts.clearLockout(user.email);
        await accounts.markVerified(user.id); // the link came to the address: it is theirs
        log.info({ event: "password.reset", userId: String(user.id) }, "password reset; every session ended");
        return status(204, undefined);
      },
      {
        parse: limitedJson(),
        body: ResetBody,
        detail: { tags: ["auth"], summary: "Choose a new password with the token of the emailed reset link" },
      },
    )
    .post(
      "/password",
      async ({ body, caller, request, server, status }) => {
        await checkPassword(parts, caller, body.currentPassword, { field: "currentPassword", request, server });
        const passwordHash = await newHash(body.newPassword);
        await accounts.setPasswordHash(caller.id, passwordHash);
        await sessions.revokeAll(caller.id, caller.sessionId);
        log.info({ event: "password.changed", userId: String(caller.id) }, "password changed; other sessions ended");
        return status(204, undefined);
      },
      {
        caller: true,
        parse: limitedJson(),
        body: ChangePasswordBody,
        detail: { tags: ["auth"], summary: "Change your password (bearer); your other sessions end" },
      },
    );
};
