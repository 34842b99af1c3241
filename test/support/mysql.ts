// A fresh MySQL database per test file, dropped at the end, so two test runs on
// one machine (or two files in one run) never see each other's users.
import { createConnection } from "mysql2/promise";
import { migrateDatabase } from "../../db/migrate.ts";

const SERVER_URL = process.env.MYSQL_URL ?? "mysql://root@127.0.0.1:3306/m3dio";

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase({ migrate = true } = {}): Promise<TestDatabase> {
  const name = `m3dio_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  await withServer((c) => c.query(`CREATE DATABASE \`${name}\``));
  if (migrate) await migrateDatabase(url.toString());
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await withServer((c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``));
    },
  };
}

async function withServer<T>(
  work: (connection: Awaited<ReturnType<typeof createConnection>>) => Promise<T>,
): Promise<T> {
  const server = new URL(SERVER_URL);
  server.pathname = "/";
  const connection = await createConnection({ uri: server.toString() });
  try {
    return await work(connection);
  } finally {
    await connection.end();
  }
}
