// One MongoClient per process. The database is the one named in the URL's path
// (default "m3dio"), so tests and deployments choose it by URL alone.

import { type Db, MongoClient } from "mongodb";
import { renewBsonScratch } from "./memory.ts";

export interface Mongo {
  client: MongoClient;
  db: Db;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The client for `url`. `waitForConnect: false` (the services) returns at once and connects in
 * the background until MongoDB answers, so a service starts while MongoDB is still starting; its
 * operations (and readiness) fail until then. Tests wait, so a wrong URL fails at once.
 */
export async function connectMongo(url: string, { appName = "m3dio", waitForConnect = true } = {}): Promise<Mongo> {
  renewBsonScratch(); // bson's scratch buffer in fresh memory: 17 MB less at rest in half the starts
  // Short server selection: a request should fail fast (503) rather than hang when MongoDB is away.
  const client = new MongoClient(url, { appName, serverSelectionTimeoutMS: 5000, connectTimeoutMS: 5000 });
  let closed = false;
  if (waitForConnect) await client.connect();
  else void connectUntilConnected(client, () => closed);
  // Not `new URL`: a replica-set URL lists several hosts, which WHATWG URL rejects.
  const named = /^mongodb(?:\+srv)?:\/\/[^/?]+\/([^?]+)/.exec(url)?.[1];
  const db = client.db(named ? decodeURIComponent(named) : "m3dio");
  return {
    client,
    db,
    async ping() {
      await db.command({ ping: 1 });
    },
    close: () => {
      closed = true;
      return client.close();
    },
  };
}

/**
 * Tries `client.connect()` until it succeeds or the client is closed. Not the driver's own
 * connect-on-first-use: a first connect that fails leaves the client a closed topology, and
 * every later operation fails with "Topology is closed" instead of trying again.
 */
async function connectUntilConnected(client: MongoClient, closed: () => boolean): Promise<void> {
  for (let delayMs = 250; !closed(); delayMs = Math.min(delayMs * 2, 5000)) {
    try {
      await client.connect();
      return;
    } catch {
      await Bun.sleep(delayMs); // each try already waited serverSelectionTimeoutMS
    }
  }
}

/**
 * MongoDB (not the request) is the trouble: it cannot be reached or the connection
 * broke. Retrying the same work helps once it answers again; failing a job for it does not.
 */
export function isMongoUnavailable(error: unknown): boolean {
  const name = (error as { name?: string })?.name ?? "";
  return /^Mongo(ServerSelection|Network|NetworkTimeout|NotConnected|TopologyClosed|PoolCleared)Error$/.test(name);
}

/** A write refused by a unique index (E11000): the document, or the key, is there already. */
export const isDuplicateKey = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === 11000;

/**
 * Waits until MongoDB answers a ping again: at most `timeoutMs`, or until `giveUp()`
 * says to stop (e.g. the worker is shutting down). Answers whether it answered.
 * Workers call this before retrying work that failed because MongoDB was away, so an
 * outage pauses the work instead of using up its attempts in a few quick failures.
 */
export async function waitForMongo(
  mongo: Pick<Mongo, "ping">,
  { timeoutMs = 60_000, giveUp = () => false }: { timeoutMs?: number; giveUp?: () => boolean } = {},
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 250; !giveUp() && Date.now() < deadline; delay = Math.min(delay * 2, 2000)) {
    if (
      await mongo.ping().then(
        () => true,
        () => false,
      )
    )
      return true;
    await Bun.sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
  }
  return false;
}

/**
 * Wraps a queue handler (of job messages, or `account`): when it fails because MongoDB is
 * away, the failure waits for MongoDB to answer again (at most `timeoutMs`, or until `giveUp()`)
 * before it goes on to the queue's counted retry. Retried at once, an outage of a few
 * seconds would use up every attempt in a burst of instant failures and strand the job,
 * whose failure could not even be recorded.
 */
export function retryAfterMongo<D extends { body?: object }>(
  mongo: Pick<Mongo, "ping">,
  log: { warn(fields: object, msg: string): void },
  handler: (delivery: D) => Promise<void>,
  { timeoutMs = 60_000, giveUp = () => false }: { timeoutMs?: number; giveUp?: () => boolean } = {},
): (delivery: D) => Promise<void> {
  return async (delivery) => {
    try {
      await handler(delivery);
    } catch (error) {
      if (isMongoUnavailable(error)) {
        const { jobId, userId } = (delivery.body ?? {}) as { jobId?: unknown; userId?: unknown };
        log.warn({ jobId, userId, err: error }, "MongoDB is away; waiting for it before trying again");
        await waitForMongo(mongo, { timeoutMs, giveUp });
      }
      throw error;
    }
  };
}
