// Applies the committed migrations in db/migrations to MYSQL_URL over a single
// connection: `bun run db:migrate`, the auth service with MIGRATE_ON_START, and the
// one-shot job in compose and k3d. Already-applied migrations are skipped.
import { fileURLToPath } from "node:url";
import { drizzle } from "drizzle-orm/mysql2";
import { migrate } from "drizzle-orm/mysql2/migrator";
import { createConnection } from "mysql2/promise";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("./migrations", import.meta.url));

export async function migrateDatabase(mysqlUrl: string): Promise<void> {
  const connection = await createConnection({ uri: mysqlUrl, timezone: "Z" });
  try {
    await migrate(drizzle(connection), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await connection.end();
  }
}

if (import.meta.main) {
  const url = process.env.MYSQL_URL || "mysql://root@127.0.0.1:3306/m3dio";
  const shown = url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
  try {
    await migrateDatabase(url);
    console.log(JSON.stringify({ level: "info", service: "migrate", msg: "migrations applied", mysql: shown }));
  } catch (error) {
    console.error(JSON.stringify({ level: "fatal", service: "migrate", msg: `migrations failed: ${(error as Error).message}`, mysql: shown }));
    process.exit(1);
  }
}
