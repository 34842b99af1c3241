// The single-use tokens that verification and password-reset emails carry, and their way
// out: auth stores a token's SHA-256 with its kind and expiry, then publishes the token
// itself to the `email` queue, whose consumer (the notifier) builds the link and sends
// it. The row is the outbox: `published_at` is set once the broker confirmed the message,
// and the sweeper gives a token left unpublished (the broker away, auth killed between
// the two) a new value and publishes that. Its old value was never sent, or at worst was
// sent and no longer works; only the hash is ever stored.
import { and, desc, eq, gt, isNull, lt, max } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { emailTokens, users } from "../db/schema.ts";
import type { Logger } from "../lib/log.ts";
import { type EmailKind, emailTokenId } from "../lib/messages.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import { deleteInBatches } from "./batch-delete.ts";
import { hashToken, newToken } from "./opaque.ts";

/** How long a link works. */
export const EMAIL_TOKEN_TTL_MS: Record<EmailKind, number> = { verify: 48 * 3_600_000, reset: 30 * 60_000 };
/** A token unpublished this long is the sweeper's: the request that made it has given up by then. */
const UNPUBLISHED_GRACE_MS = 60_000;

export interface Issued {
  id: number;
  token: string;
}

export interface Recipient {
  id: number;
  email: string;
}

export function emailTokenStore(db: MySql2Database) {
  /** The unexpired token of `kind` with this value. */
  async function find(kind: EmailKind, token: string) {
    const [row] = await db
      .select({ id: emailTokens.id, userId: emailTokens.userId })
      .from(emailTokens)
      .where(
        and(
          eq(emailTokens.tokenHash, hashToken(token)),
          eq(emailTokens.kind, kind),
          gt(emailTokens.expiresAt, new Date()),
        ),
      )
      .limit(1);
    return row;
  }

  return {
    /**
     * A new token of `kind` for the user; answers it (to publish) with its row id. With
     * `atMostEveryMs`, only if the user's last one is at least that old; else the time to
     * wait. The user's row is locked meanwhile, so two requests at once make one token.
     */
    async issue(userId: number, kind: EmailKind, atMostEveryMs = 0): Promise<Issued | { retryAfterMs: number }> {
      const { token, hash } = newToken();
      return db.transaction(async (tx) => {
        const now = new Date();
        if (atMostEveryMs > 0) {
          await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for("update");
          const [last] = await tx
            .select({ at: max(emailTokens.createdAt) })
            .from(emailTokens)
            .where(and(eq(emailTokens.userId, userId), eq(emailTokens.kind, kind)));
          const wait = last?.at ? last.at.getTime() + atMostEveryMs - now.getTime() : 0;
          if (wait > 0) return { retryAfterMs: wait };
        }
        const expiresAt = new Date(now.getTime() + EMAIL_TOKEN_TTL_MS[kind]);
        const [row] = await tx
          .insert(emailTokens)
          .values({ userId, kind, tokenHash: hash, createdAt: now, expiresAt })
          .$returningId();
        return { id: row!.id, token };
      });
    },

    markPublished: async (id: number) => {
      await db.update(emailTokens).set({ publishedAt: new Date() }).where(eq(emailTokens.id, id));
    },

    /** The user a token of `kind` is for, while it works; spends nothing. */
    holder: async (kind: EmailKind, token: string) => (await find(kind, token))?.userId,

    /**
     * Spends a token: the user it was for, once, while it has not expired; then every token
     * of that kind of the user goes (one link opened makes the other links of the kind moot).
     */
    async spend(kind: EmailKind, token: string): Promise<number | undefined> {
      const row = await find(kind, token);
      if (!row) return undefined;
      const [spent] = await db.delete(emailTokens).where(eq(emailTokens.id, row.id));
      if (spent.affectedRows !== 1) return undefined; // spent by a request at the same moment
      await db.delete(emailTokens).where(and(eq(emailTokens.userId, row.userId), eq(emailTokens.kind, kind)));
      return row.userId;
    },

    /** Tokens whose message the broker never confirmed, past the grace, with their recipient, oldest first. */
    unpublished: (now = new Date()) =>
      db
        .select({ id: emailTokens.id, kind: emailTokens.kind, userId: users.id, email: users.email })
        .from(emailTokens)
        .innerJoin(users, eq(users.id, emailTokens.userId))
        .where(
          and(
            isNull(emailTokens.publishedAt),
            isNull(users.deletingAt),
            gt(emailTokens.expiresAt, now),
            lt(emailTokens.createdAt, new Date(now.getTime() - UNPUBLISHED_GRACE_MS)),
          ),
        )
        .orderBy(desc(emailTokens.createdAt))
        .limit(100),

    /** A new value for an unpublished token; undefined if it was published or spent meanwhile. */
    async renew(id: number): Promise<string | undefined> {
      const { token, hash } = newToken();
      const [result] = await db
        .update(emailTokens)
        .set({ tokenHash: hash })
        .where(and(eq(emailTokens.id, id), isNull(emailTokens.publishedAt)));
      return result.affectedRows === 1 ? token : undefined;
    },

    /** Deletes expired tokens; answers how many. */
    sweep: (now = new Date()): Promise<number> => deleteInBatches(db, emailTokens, lt(emailTokens.expiresAt, now)),
  };
}
export type EmailTokenStore = ReturnType<typeof emailTokenStore>;

/** Issues and publishes the emails' tokens; `sweep` publishes what a failure left behind. */
export function emailSender({ tokens, queue, log }: { tokens: EmailTokenStore; queue: Queue; log: Logger }) {
  /** Publishes one token (confirmed) and records it; a failure is logged and left to the sweeper. */
  async function publish(to: Recipient, kind: EmailKind, issued: Issued): Promise<boolean> {
    const tokenId = emailTokenId(issued.token);
    const fields = { userId: String(to.id), kind, tokenId };
    try {
      await queue.publish(
        QUEUES.email,
        { kind, to: to.email, token: issued.token, userId: String(to.id) },
        { messageId: `${kind}-${to.id}-${tokenId}` },
      );
      await tokens.markPublished(issued.id);
      log.info({ event: "email.queued", ...fields }, `${kind} email queued`);
      return true;
    } catch (error) {
      log.warn({ event: "email.publish_failed", err: error, ...fields }, "email not queued yet; the sweeper retries");
      return false;
    }
  }

  return {
    /**
     * A new `kind` token for the user, published (a failure is the sweeper's to finish).
     * With `atMostEveryMs`, nothing if the last one is younger: answers the time to wait.
     */
    async send(to: Recipient, kind: EmailKind, atMostEveryMs = 0): Promise<{ retryAfterMs: number } | undefined> {
      const issued = await tokens.issue(to.id, kind, atMostEveryMs);
      if ("retryAfterMs" in issued) return issued;
      await publish(to, kind, issued);
    },

    /** Publishes (with a new value) each token a failure left unpublished; answers how many went out. */
    async sweep(): Promise<number> {
      let sent = 0;
      for (const row of await tokens.unpublished()) {
        const token = await tokens.renew(row.id);
        const kind = row.kind as EmailKind;
        if (token && (await publish({ id: row.userId, email: row.email }, kind, { id: row.id, token }))) sent++;
      }
      return sent;
    },
  };
}
export type EmailSender = ReturnType<typeof emailSender>;
