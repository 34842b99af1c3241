// Applies the committed migrations in db/migrations to MYSQL_URL over a single
// connection: `bun run db:migrate`, the auth service with MIGRATE_ON_START, and the
// one-shot job in compose and k3d. Already-applied migrations are skipped. A database
// that does not exist yet is created first (a fresh local MariaDB has none), when the
// account may; where it may not, the server's "Unknown database" error stands.
import { fileURLToPath } from "node:url";
import { Type } from "@sinclair/typebox";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import { createConnection } from "mysql2/promise";
import { loadConfig, MysqlUrl } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("./migrations", import.meta.url));

export async function migrateDatabase(mysqlUrl: string): Promise<void> {
  const connection = await createConnection({ uri: mysqlUrl, timezone: "Z" }).catch(async (error: Error) => {
    if ((error as { code?: string }).code !== "ER_BAD_DB_ERROR") throw error;
    // Not allowed to create it: the missing database is the problem to report.
    await createDatabase(mysqlUrl).catch((denied: unknown) => {
      throw Object.assign(error, { cause: denied });
    });
    return createConnection({ uri: mysqlUrl, timezone: "Z" });
  });
  try {
    await migrate(drizzle(connection), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await connection.end();
  }
}

/** What `bun run db:migrate` or MIGRATE_ON_START would fix, in the words a readiness check and a log line use. */
export const NOT_MIGRATED_HINT = "run `bun run db:migrate` (or start auth with MIGRATE_ON_START=true)";

/**
 * Committed migrations the database has not applied, decided as drizzle's migrator decides
 * (a migration newer than the last one recorded in `__drizzle_migrations` is pending).
 * A database or a table that does not exist yet means every migration is pending.
 */
export async function pendingMigrations(query: (sql: string) => Promise<unknown>): Promise<number> {
  const committed = readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
  let last = 0;
  try {
    const [rows] = (await query("SELECT MAX(created_at) AS last FROM `__drizzle_migrations`")) as [{ last: unknown }[]];
    last = Number(rows[0]?.last ?? 0);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== "ER_NO_SUCH_TABLE" && code !== "ER_BAD_DB_ERROR") throw error;
  }
  return committed.filter((migration) => migration.folderMillis > last).length;
}

/** Creates the database the URL names, connected to the server without one. */
async function createDatabase(mysqlUrl: string): Promise<void> {
  const url = new URL(mysqlUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = "/";
  const server = await createConnection({ uri: url.toString() });
  try {
    await server.query(`CREATE DATABASE IF NOT EXISTS ${server.escapeId(name)}`);
  } finally {
    await server.end();
  }
}

/** The migrator's own config: the one variable it reads, checked like every service's. */
export const MigrateConfig = Type.Object({ MYSQL_URL: MysqlUrl });

if (import.meta.main) {
  const { MYSQL_URL: url } = loadConfig(MigrateConfig);
  const shown = url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
  const log = createLogger("migrate");
  try {
    await migrateDatabase(url);
    log.info({ event: "db.migrated", mysql: shown }, "migrations applied");
  } catch (error) {
    log.fatal(
      { event: "db.migration_failed", mysql: shown, err: error },
      `migrations failed: ${(error as Error).message}`,
    );
    process.exit(1);
  }
}
