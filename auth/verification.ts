// Verifying the address: registration sends the first link (auth.ts), `POST /verify` spends
// it, `POST /verify/resend` sends another, at most one every RESEND_EVERY_MS. The address
// counts as verified in access tokens signed from then on (`email_verified`): a refresh
// or a new login shows it.
import { Elysia } from "elysia";
import { Verified, VerifyBody } from "../lib/account-models.ts";
import { limitedJson } from "../lib/json.ts";
import { Conflict, Problem, TooManyRequests, Unprocessable } from "../lib/problem.ts";
import { bearerCaller } from "./access-tokens.ts";
import type { AuthParts } from "./parts.ts";

/** A verification email at most this often per account (registration's counts). */
export const RESEND_EVERY_MS = 10 * 60_000;

/** The answer to a link's token that does not work (never was, spent, expired): the same for each. */
export const linkNotWorking = (kind: "verification" | "reset") =>
  new Unprocessable(`this ${kind} link does not work (any more); ask for a new one`, [
    { field: "token", message: "is unknown, used or expired" },
  ]);

export const verificationRoutes = (parts: AuthParts) => {
  const { log, accounts, emailTokens, sender, tokens } = parts;
  return new Elysia({ name: "auth.verification" })
    .use(bearerCaller(tokens, accounts))
    .post(
      "/verify",
      async ({ body }) => {
        const userId = await emailTokens.spend("verify", body.token);
        if (!userId) throw linkNotWorking("verification");
        await accounts.markVerified(userId);
        log.info({ event: "email.verified", userId: String(userId) }, "address verified");
        return { verified: true as const };
      },
      {
        parse: limitedJson(),
        body: VerifyBody,
        response: { 200: Verified, 422: Problem },
        detail: { tags: ["auth"], summary: "Verify the address with the token of the emailed link" },
      },
    )
    .post(
      "/verify/resend",
      async ({ caller, status }) => {
        if (caller.emailVerified) throw new Conflict("your address is verified already");
        const refused = await sender.send(caller, "verify", RESEND_EVERY_MS);
        if (refused)
          throw new TooManyRequests(
            "a verification email went out less than 10 minutes ago; check your inbox (and spam folder)",
            refused.retryAfterMs / 1000,
          );
        log.info({ event: "email.verification_resent", userId: String(caller.id) }, "verification email sent again");
        return status(202, undefined);
      },
      {
        caller: true,
        detail: { tags: ["auth"], summary: "Send the verification email again (bearer; once every 10 minutes)" },
      },
    );
};
