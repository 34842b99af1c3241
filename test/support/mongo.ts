// The MongoDB that tests use. With MONGODB_URL set, that server; without it,
// one in-memory stand-in per test process (test/support/mongo-standin.ts),
// started on first use. Either way each call gets its own fresh database, so
// test files and test runs never see each other's data.
//
//   import { testMongoUrl, dropTestDatabase } from "./support/mongo.ts";
//   const url = await testMongoUrl();          // mongodb://host:port/m3dio_test_<pid>_<random>
//   afterAll(() => dropTestDatabase(url));
import { MongoClient } from "mongodb";
import { type MongoStandin, startMongoStandin } from "./mongo-standin.ts";

let standin: Promise<MongoStandin> | undefined;

/** `url` with its database (path) replaced by `name`; keeps hosts, credentials and query options. */
export function withDatabase(url: string, name: string): string {
  // Not `new URL`: mongodb URLs may list several hosts, which WHATWG URL rejects.
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(?:\/[^?]*)?(\?.*)?$/.exec(url);
  if (!match) throw new Error(`not a mongodb:// URL: ${url}`);
  return `${match[1]}/${name}${match[2] ?? ""}`;
}

/** A URL for a new, empty, uniquely named database (`m3dio_test_<pid>_<random>`). */
export async function testMongoUrl(): Promise<string> {
  // The stand-in is unref'd so an open listener never keeps `bun test` alive.
  let server = process.env.MONGODB_URL;
  if (!server) {
    standin ??= startMongoStandin({ unref: true });
    server = (await standin).url;
  }
  return withDatabase(server, `m3dio_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`);
}

/** Drops the database named in `url` (for afterAll). */
export async function dropTestDatabase(url: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.db().dropDatabase();
  } finally {
    await client.close();
  }
}
