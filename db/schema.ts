// The auth service's tables. auth.ts is the only service that touches MySQL.
// Ids are bigint auto-increment rather than serial(): serial() breaks migrations on MariaDB.

import { sql } from "drizzle-orm";
import { bigint, char, datetime, index, mysqlTable, varchar } from "drizzle-orm/mysql-core";

const userId = () => bigint("user_id", { mode: "number", unsigned: true }).notNull();
const time = (name: string) => datetime(name, { mode: "date", fsp: 3 });

/**
 * An account. `email_verified_at` is set once the owner opened a verification (or reset)
 * link; `deleting_at` once deletion began: such an account logs in no more, and auth's
 * sweeper finishes deleting it (auth/deletion.ts) after the converter was told.
 */
export const users = mysqlTable(
  "users",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    email: varchar("email", { length: 254 }).notNull().unique("users_email_unique"),
    passwordHash: varchar("password_hash", { length: 255 }).notNull(),
    createdAt: time("created_at").notNull().default(sql`CURRENT_TIMESTAMP(3)`),
    emailVerifiedAt: time("email_verified_at"),
    deletingAt: time("deleting_at"),
  },
  (table) => [index("users_deleting").on(table.deletingAt)],
);

/**
 * Refresh tokens, stored as their SHA-256 (the token is shown once, at login or refresh).
 * One login starts a family; each refresh marks its token `rotated_at` and adds the next.
 * A rotated token shown again was copied: the whole family goes (auth/session-store.ts).
 */
export const refreshTokens = mysqlTable(
  "refresh_tokens",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    userId: userId(),
    family: char("family", { length: 32 }).notNull(),
    tokenHash: char("token_hash", { length: 64 }).notNull().unique("refresh_tokens_hash_unique"),
    createdAt: time("created_at").notNull(),
    expiresAt: time("expires_at").notNull(),
    rotatedAt: time("rotated_at"),
  },
  (table) => [
    index("refresh_tokens_user").on(table.userId),
    index("refresh_tokens_family").on(table.family),
    index("refresh_tokens_expiry").on(table.expiresAt),
  ],
);

/**
 * Single-use tokens sent by email (`verify`: 48 h, `reset`: 30 min), stored as their
 * SHA-256. `published_at` stays empty until the broker confirmed the `email` message;
 * the sweeper re-issues a token left unpublished (auth/email-tokens.ts).
 */
export const emailTokens = mysqlTable(
  "email_tokens",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    userId: userId(),
    kind: varchar("kind", { length: 16 }).notNull(),
    tokenHash: char("token_hash", { length: 64 }).notNull().unique("email_tokens_hash_unique"),
    createdAt: time("created_at").notNull(),
    expiresAt: time("expires_at").notNull(),
    publishedAt: time("published_at"),
  },
  (table) => [
    index("email_tokens_user_kind").on(table.userId, table.kind, table.createdAt),
    index("email_tokens_expiry").on(table.expiresAt),
    index("email_tokens_unpublished").on(table.publishedAt),
  ],
);

/**
 * API keys for programs (`m3d_` and 43 base64url characters), stored as the SHA-256 of the
 * whole key (shown once, at creation) with its first characters (`prefix`) for telling keys
 * apart in a list. `last_used_at` moves at most once a minute (auth/api-keys.ts).
 */
export const apiKeys = mysqlTable(
  "api_keys",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    userId: userId(),
    name: varchar("name", { length: 100 }).notNull(),
    keyHash: char("key_hash", { length: 64 }).notNull().unique("api_keys_hash_unique"),
    prefix: varchar("prefix", { length: 16 }).notNull(),
    createdAt: time("created_at").notNull(),
    lastUsedAt: time("last_used_at"),
  },
  (table) => [index("api_keys_user").on(table.userId)],
);

/**
 * Login attempts, kept in MySQL so the lockout holds across auth replicas. The lockout
 * counts them per account *and* client address (auth/accounts.ts), so a stranger's
 * guesses lock out the stranger, not the owner. Rows older than the lockout window count
 * for nothing and are swept (the index on `attempted_at` alone serves that).
 */
export const loginAttempts = mysqlTable(
  "login_attempts",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    email: varchar("email", { length: 254 }).notNull(),
    /** The client's address as auth keys it: IPv4 whole, IPv6 by its /64 (auth/client-address.ts). */
    clientAddress: varchar("client_address", { length: 64 }).notNull(),
    attemptedAt: datetime("attempted_at", { mode: "date", fsp: 3 }).notNull(),
  },
  (table) => [
    index("login_attempts_account_address_time").on(table.email, table.clientAddress, table.attemptedAt),
    index("login_attempts_time").on(table.attemptedAt),
  ],
);
