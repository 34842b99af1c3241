// One MongoClient per process. The database is the one named in the URL's path
// (default "m3dio"), so tests and deployments choose it by URL alone.
import { type Db, MongoClient } from "mongodb";

export interface Mongo {
  client: MongoClient;
  db: Db;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function connectMongo(url: string, { appName = "m3dio" } = {}): Promise<Mongo> {
  // Short server selection: a request should fail fast (503) rather than hang when MongoDB is away.
  const client = new MongoClient(url, { appName, serverSelectionTimeoutMS: 5000, connectTimeoutMS: 5000 });
  await client.connect();
  // Not `new URL`: a replica-set URL lists several hosts, which WHATWG URL rejects.
  const named = /^mongodb(?:\+srv)?:\/\/[^/?]+\/([^?]+)/.exec(url)?.[1];
  const db = client.db(named ? decodeURIComponent(named) : "m3dio");
  return {
    client,
    db,
    async ping() {
      await db.command({ ping: 1 });
    },
    close: () => client.close(),
  };
}
