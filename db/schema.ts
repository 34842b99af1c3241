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

/** Failed logins, kept in MySQL so the lockout holds across auth replicas. */
export const loginAttempts = mysqlTable(
  "login_attempts",
  {
    id: bigint("id", { mode: "number", unsigned: true }).autoincrement().primaryKey(),
    email: varchar("email", { length: 254 }).notNull(),
    attemptedAt: datetime("attempted_at", { mode: "date", fsp: 3 }).notNull(),
  },
  (table) => [index("login_attempts_email_time").on(table.email, table.attemptedAt)],
);
