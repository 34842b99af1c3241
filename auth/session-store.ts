// Sessions in MySQL: a login starts a family of refresh tokens; each refresh rotates the
// token it was given (marks it `rotated_at`) and adds the next one to the family. A token
// shown again after it was rotated was copied, by a thief or a client racing itself: the
// whole family goes, so whoever holds its newest token is logged out too. Tokens are
// stored as their SHA-256 (auth/opaque.ts); rotated ones are kept until they expire, to
// recognise a replay.
import { randomBytes } from "node:crypto";
import { and, eq, isNull, lt, ne } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { refreshTokens } from "../db/schema.ts";
import { deleteInBatches } from "./batch-delete.ts";
import { hashToken, newToken } from "./opaque.ts";

/** How long a refresh token works (each refresh gives a new one, for as long again). */
export const REFRESH_TTL_MS = 30 * 24 * 3_600_000;

export interface RefreshToken {
  refreshToken: string;
  refreshExpiresAt: Date;
  /** The session: every token of one login shares it (the access token's `sid`). */
  family: string;
}

export type Rotation =
  | { kind: "rotated"; userId: number; next: RefreshToken }
  /** A token rotated before, shown again: its family is revoked. */
  | { kind: "reused"; userId: number; family: string }
  | { kind: "invalid" };

export function sessionStore(db: MySql2Database) {
  /** Adds a fresh token to `family` (inside `into`, a transaction or the pool). */
  async function issue(into: Pick<MySql2Database, "insert">, userId: number, family: string): Promise<RefreshToken> {
    const { token, hash } = newToken();
    const now = new Date();
    const expiresAt = new Date(now.getTime() + REFRESH_TTL_MS);
    await into.insert(refreshTokens).values({ userId, family, tokenHash: hash, createdAt: now, expiresAt });
    return { refreshToken: token, refreshExpiresAt: expiresAt, family };
  }

  const revokeFamily = async (family: string) => {
    await db.delete(refreshTokens).where(eq(refreshTokens.family, family));
  };

  return {
    /** A new session for a login. */
    start: (userId: number) => issue(db, userId, randomBytes(16).toString("hex")),

    /**
     * The next token of `token`'s session. A token already rotated (also by a refresh
     * running at the same moment: only one of two can rotate it) revokes the session.
     */
    async rotate(token: string): Promise<Rotation> {
      const now = new Date();
      const [row] = await db
        .select()
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, hashToken(token)))
        .limit(1);
      if (!row || row.expiresAt <= now) return { kind: "invalid" };
      const next = await db.transaction(async (tx) => {
        const [marked] = await tx
          .update(refreshTokens)
          .set({ rotatedAt: now })
          .where(and(eq(refreshTokens.id, row.id), isNull(refreshTokens.rotatedAt)));
        return marked.affectedRows === 1 ? issue(tx, row.userId, row.family) : undefined;
      });
      if (next) return { kind: "rotated", userId: row.userId, next };
      await revokeFamily(row.family);
      return { kind: "reused", userId: row.userId, family: row.family };
    },

    /** Logs out `token`'s session (every token of its family); answers its user, if the token was known. */
    async end(token: string): Promise<number | undefined> {
      const [row] = await db
        .select({ userId: refreshTokens.userId, family: refreshTokens.family })
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, hashToken(token)))
        .limit(1);
      if (row) await revokeFamily(row.family);
      return row?.userId;
    },

    /** Revokes every session of the user, but `keep` (the caller's own, on a password change). */
    async revokeAll(userId: number, keep?: string): Promise<void> {
      const others = keep ? ne(refreshTokens.family, keep) : undefined;
      await db.delete(refreshTokens).where(and(eq(refreshTokens.userId, userId), others));
    },

    /** Deletes tokens past their expiry (rotated or not, they count for nothing); answers how many. */
    sweep: (now = new Date()): Promise<number> => deleteInBatches(db, refreshTokens, lt(refreshTokens.expiresAt, now)),
  };
}
export type SessionStore = ReturnType<typeof sessionStore>;
