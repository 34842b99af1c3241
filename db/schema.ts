// The auth service's tables. auth.ts is the only service that touches MySQL.
// Ids are bigint auto-increment rather than serial(): serial() breaks migrations on MariaDB.

import { sql } from "drizzle-orm";
import { bigint, datetime, index, mysqlTable, varchar } from "drizzle-orm/mysql-core";

export const users = mysqlTable("users", {
  id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
  email: varchar("email", { length: 254 }).notNull().unique("users_email_unique"),
  passwordHash: varchar("password_hash", { length: 255 }).notNull(),
  createdAt: datetime("created_at", { mode: "date", fsp: 3 }).notNull().default(sql`CURRENT_TIMESTAMP(3)`),
});

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
