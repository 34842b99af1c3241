// Deleting an account, in steps that a crash between any two of them leaves finishable:
//   1. mark the user `deleting_at` and end its sessions, links and API keys (it logs in no more);
//   2. publish `account {userId}` and wait for the broker's confirm: the converter then
//      removes the account's jobs, files, keys and webhooks from MongoDB (converter/accounts.ts);
//   3. delete the account's rows: login attempts, tokens, the user.
// The marked row is the to-do list: every sweep (any replica, every minute, and at start)
// does steps 2 and 3 again for each marked user. Publishing twice is harmless (the
// converter's removal is idempotent), and so is deleting rows that are gone.
import { eq, isNotNull } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { apiKeys, emailTokens, loginAttempts, refreshTokens, users } from "../db/schema.ts";
import type { Logger } from "../lib/log.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import type { User } from "./accounts.ts";

export function accountDeletion({ db, queue, log }: { db: MySql2Database; queue: Queue; log: Logger }) {
  /** Steps 2 and 3; answers whether the account is gone from MySQL (false: the sweeper will try again). */
  async function finish(user: Pick<User, "id" | "email">): Promise<boolean> {
    const userId = String(user.id);
    try {
      await queue.publish(QUEUES.account, { userId }, { messageId: `account-${userId}` });
      log.info({ event: "account.deletion_published", userId }, "the converter is told to remove the account's data");
      await db.transaction(async (tx) => {
        await tx.delete(loginAttempts).where(eq(loginAttempts.email, user.email));
        await tx.delete(refreshTokens).where(eq(refreshTokens.userId, user.id));
        await tx.delete(emailTokens).where(eq(emailTokens.userId, user.id));
        await tx.delete(apiKeys).where(eq(apiKeys.userId, user.id));
        await tx.delete(users).where(eq(users.id, user.id));
      });
      log.info({ event: "account.purged", userId }, "the account's rows are deleted");
      return true;
    } catch (error) {
      log.warn({ event: "account.deletion_deferred", userId, err: error }, "deletion not finished; the sweeper will");
      return false;
    }
  }

  return {
    /** Step 1, then the rest: the account is unusable once this resolves, and gone unless a store was away. */
    async delete(user: Pick<User, "id" | "email">): Promise<boolean> {
      await db.transaction(async (tx) => {
        await tx.update(users).set({ deletingAt: new Date() }).where(eq(users.id, user.id));
        await tx.delete(refreshTokens).where(eq(refreshTokens.userId, user.id));
        await tx.delete(emailTokens).where(eq(emailTokens.userId, user.id));
        await tx.delete(apiKeys).where(eq(apiKeys.userId, user.id));
      });
      log.info({ event: "account.deleting", userId: String(user.id) }, "account deletion begun");
      return finish(user);
    },

    /** Finishes every deletion a crash or an outage left marked; answers how many it finished. */
    async sweep(): Promise<number> {
      const marked = await db
        .select({ id: users.id, email: users.email })
        .from(users)
        .where(isNotNull(users.deletingAt))
        .limit(100);
      let finished = 0;
      for (const user of marked) if (await finish(user)) finished++;
      return finished;
    },
  };
}
export type AccountDeletion = ReturnType<typeof accountDeletion>;
