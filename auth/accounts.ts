// The accounts in MySQL: registration, the login check with its lockout, and what the
// account routes change (the password, the verified address). The routes in auth.ts and
// auth/*-routes.ts call these and turn their outcomes into answers.
import { randomUUID } from "node:crypto";
import { and, count, eq, gt, isNull, lt, min } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { loginAttempts, users } from "../db/schema.ts";
import { deleteInBatches } from "./batch-delete.ts";
import type { HashSlots } from "./limits.ts";

/** Failed logins allowed per account and client address within the window before 429. */
export const LOCKOUT = { maxFailures: 5, windowMs: 15 * 60 * 1000 };

export interface HashCost {
  memoryCost: number; // KiB
  timeCost: number; // iterations
}

/** An account as the routes see it. */
export interface User {
  id: number;
  email: string;
  emailVerified: boolean;
}

export type LoginOutcome =
  | { kind: "ok"; user: User }
  | { kind: "locked"; retryAfterSeconds: number }
  | { kind: "wrong" }
  | { kind: "busy" };

export class EmailTaken extends Error {
  override name = "EmailTaken";
}
/** Every hashing slot is taken and as many requests wait: refused now rather than queued. */
export class HashingBusy extends Error {
  override name = "HashingBusy";
}

const userOf = (row: { id: number; email: string; emailVerifiedAt: Date | null }): User => ({
  id: row.id,
  email: row.email,
  emailVerified: row.emailVerifiedAt !== null,
});

export function accountStore(db: MySql2Database, cost: HashCost, slots: HashSlots) {
  const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: "argon2id", ...cost });
  /** A hash within a slot; HashingBusy when none is free. */
  async function hashInSlot(password: string): Promise<string> {
    const release = await slots.take();
    if (!release) throw new HashingBusy();
    try {
      return await hashPassword(password);
    } finally {
      release();
    }
  }
  // Unknown emails are checked against this hash so they cost as much as a wrong password.
  const dummyHash = hashPassword(randomUUID());

  /**
   * Records this login attempt as a failure before the password is checked, so a burst
   * of parallel guesses is counted at once and only the first few ever reach the
   * (deliberately slow) hash check. Attempts count per account and client address: a
   * stranger's guesses lock that stranger out of this account, not its owner. Every
   * attempt counts, also while locked: the lock lifts a window after the guessing stops.
   * Answers the seconds to wait when locked.
   */
  async function recordAttempt(email: string, clientAddress: string, now: Date): Promise<number | undefined> {
    const since = new Date(now.getTime() - LOCKOUT.windowMs);
    await db.insert(loginAttempts).values({ email, clientAddress, attemptedAt: now });
    const [row] = await db
      .select({ attempts: count(), oldest: min(loginAttempts.attemptedAt) })
      .from(loginAttempts)
      .where(
        and(
          eq(loginAttempts.email, email),
          eq(loginAttempts.clientAddress, clientAddress),
          gt(loginAttempts.attemptedAt, since),
        ),
      );
    if ((row?.attempts ?? 0) <= LOCKOUT.maxFailures) return undefined;
    return ((row?.oldest ?? now).getTime() + LOCKOUT.windowMs - now.getTime()) / 1000;
  }

  return {
    /** Creates the account; throws EmailTaken if the (normalised) email has one, HashingBusy if no slot is free. */
    async register(email: string, password: string): Promise<User> {
      const passwordHash = await hashInSlot(password);
      try {
        const [inserted] = await db.insert(users).values({ email, passwordHash }).$returningId();
        return { id: inserted!.id, email, emailVerified: false };
      } catch (error) {
        if (isDuplicateKey(error)) throw new EmailTaken(email);
        throw error;
      }
    },

    /**
     * Whether these credentials log in from `clientAddress` (auth/client-address.ts). A
     * slot is taken first, so an attempt refused as busy is not counted as a failure;
     * a success clears this address's failures for the account.
     */
    async login(email: string, password: string, clientAddress: string): Promise<LoginOutcome> {
      const release = await slots.take();
      if (!release) return { kind: "busy" };
      try {
        const lockedFor = await recordAttempt(email, clientAddress, new Date());
        if (lockedFor !== undefined) return { kind: "locked", retryAfterSeconds: lockedFor };
        const [user] = await db.select().from(users).where(eq(users.email, email)).limit(1);
        const valid = await Bun.password.verify(password, user?.passwordHash ?? (await dummyHash));
        // An account being deleted is no account: the same answer as a wrong password.
        if (!user || !valid || user.deletingAt) return { kind: "wrong" };
        await db
          .delete(loginAttempts)
          .where(and(eq(loginAttempts.email, email), eq(loginAttempts.clientAddress, clientAddress)));
        return { kind: "ok", user: userOf(user) };
      } finally {
        release();
      }
    },

    /** The account with this id, unless there is none or it is being deleted. */
    async find(id: number): Promise<User | undefined> {
      const [row] = await db
        .select()
        .from(users)
        .where(and(eq(users.id, id), isNull(users.deletingAt)))
        .limit(1);
      return row && userOf(row);
    },

    /** The account with this (normalised) email, unless there is none or it is being deleted. */
    async findByEmail(email: string): Promise<User | undefined> {
      const [row] = await db
        .select()
        .from(users)
        .where(and(eq(users.email, email), isNull(users.deletingAt)))
        .limit(1);
      return row && userOf(row);
    },

    /** A password's hash, made in a slot (HashingBusy when none is free), for setPasswordHash. */
    hash: hashInSlot,

    async setPasswordHash(id: number, passwordHash: string): Promise<void> {
      await db.update(users).set({ passwordHash }).where(eq(users.id, id));
    },

    /** The owner opened a link sent to the address: it is theirs (kept from the first time). */
    async markVerified(id: number): Promise<void> {
      await db
        .update(users)
        .set({ emailVerifiedAt: new Date() })
        .where(and(eq(users.id, id), isNull(users.emailVerifiedAt)));
    },

    /**
     * Lifts the account's lockout from every address: what a password reset calls once
     * the owner has proved the email is theirs.
     */
    async clearLockout(email: string): Promise<void> {
      await db.delete(loginAttempts).where(eq(loginAttempts.email, email));
    },

    /** Deletes attempts older than the lockout window (they count for nothing); answers how many. */
    async sweepAttempts(now = new Date()): Promise<number> {
      const before = new Date(now.getTime() - LOCKOUT.windowMs);
      return deleteInBatches(db, loginAttempts, lt(loginAttempts.attemptedAt, before));
    },
  };
}
export type AccountStore = ReturnType<typeof accountStore>;

function isDuplicateKey(error: unknown): boolean {
  for (let cause: unknown = error; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: string }).code === "ER_DUP_ENTRY") return true;
  }
  return false;
}
