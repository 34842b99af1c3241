// The accounts in MySQL: registration, and the login check with its lockout. The
// routes in auth.ts call these and turn their outcomes into answers.
import { randomUUID } from "node:crypto";
import { and, count, eq, gt, lt, min } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { loginAttempts, users } from "../db/schema.ts";

/** Failed logins allowed per email within the window before 429. */
export const LOCKOUT = { maxFailures: 5, windowMs: 15 * 60 * 1000 };

export interface HashCost {
  memoryCost: number; // KiB
  timeCost: number; // iterations
}

export type LoginOutcome =
  | { kind: "ok"; user: { id: number; email: string } }
  | { kind: "locked"; retryAfterSeconds: number }
  | { kind: "wrong" };

export class EmailTaken extends Error {
  override name = "EmailTaken";
}

export function accountStore(db: MySql2Database, cost: HashCost) {
  const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: "argon2id", ...cost });
  // Unknown emails are checked against this hash so they cost as much as a wrong password.
  const dummyHash = hashPassword(randomUUID());

  /**
   * Records this login attempt as a failure before the password is checked, so a
   * burst of parallel guesses is counted at once and only the first few ever reach
   * the (deliberately slow) hash check. Every attempt counts, also while locked: the
   * lock lifts a window after the guessing stops. Answers the seconds to wait when locked.
   */
  async function recordAttempt(email: string, now: Date): Promise<number | undefined> {
    const since = new Date(now.getTime() - LOCKOUT.windowMs);
    await db.insert(loginAttempts).values({ email, attemptedAt: now });
    // Rows older than the window no longer count for anything.
    await db.delete(loginAttempts).where(and(eq(loginAttempts.email, email), lt(loginAttempts.attemptedAt, since)));
    const [row] = await db
      .select({ attempts: count(), oldest: min(loginAttempts.attemptedAt) })
      .from(loginAttempts)
      .where(and(eq(loginAttempts.email, email), gt(loginAttempts.attemptedAt, since)));
    if ((row?.attempts ?? 0) <= LOCKOUT.maxFailures) return undefined;
    return ((row?.oldest ?? now).getTime() + LOCKOUT.windowMs - now.getTime()) / 1000;
  }

  return {
    /** Creates the account; throws EmailTaken if the (normalised) email has one. */
    async register(email: string, password: string): Promise<{ id: number; email: string }> {
      const passwordHash = await hashPassword(password);
      try {
        const [inserted] = await db.insert(users).values({ email, passwordHash }).$returningId();
        return { id: inserted!.id, email };
      } catch (error) {
        if (isDuplicateKey(error)) throw new EmailTaken(email);
        throw error;
      }
    },

    /** Whether these credentials log in; a success clears the account's failures. */
    async login(email: string, password: string): Promise<LoginOutcome> {
      const lockedFor = await recordAttempt(email, new Date());
      if (lockedFor !== undefined) return { kind: "locked", retryAfterSeconds: lockedFor };
      const [user] = await db.select().from(users).where(eq(users.email, email)).limit(1);
      const valid = await Bun.password.verify(password, user?.passwordHash ?? (await dummyHash));
      if (!user || !valid) return { kind: "wrong" };
      await db.delete(loginAttempts).where(eq(loginAttempts.email, email));
      return { kind: "ok", user: { id: user.id, email: user.email } };
    },
  };
}

function isDuplicateKey(error: unknown): boolean {
  for (let cause: unknown = error; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: string }).code === "ER_DUP_ENTRY") return true;
  }
  return false;
}
