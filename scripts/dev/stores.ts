// The stores `bun run dev` needs, checked before any service starts: MySQL (migrated
// here, so auth never meets a fresh database without its tables) and RabbitMQ must
// answer, else dev stops with one line saying which; MongoDB is the configured one, a
// local one on 27017, or else the in-memory stand-in, started here and said loudly.
import { connect as connectTcp } from "node:net";
import amqp from "amqplib";
import { createConnection } from "mysql2/promise";
import { migrateDatabase } from "../../db/migrate.ts";
import type { Logger } from "../../lib/log.ts";
import { startMongoStandin } from "../../test/support/mongo-standin.ts";

const CONNECT_TIMEOUT_MS = 5000;
const LOCAL_MONGODB = "mongodb://127.0.0.1:27017/m3dio";

/** A store that did not answer: `store` names it, `variable` the setting that points at it. */
export class StoreUnreachable extends Error {
  override name = "StoreUnreachable";
  constructor(
    readonly store: "mysql" | "rabbitmq",
    readonly variable: string,
    readonly url: string,
    cause: unknown,
  ) {
    const label = store === "mysql" ? "MySQL" : "RabbitMQ";
    super(
      `${label} is not reachable at ${url} (${(cause as Error).message || String(cause)}); start it (README: "For development") or set ${variable}`,
      { cause },
    );
  }
}

/** The URL with its password masked, for log lines. */
export function shown(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
}

/** Connects to the MySQL server (not yet the database, which may not exist) and applies the migrations. */
export async function prepareMysql(url: string): Promise<void> {
  const server = new URL(url);
  server.pathname = "/";
  try {
    const connection = await createConnection({ uri: server.toString(), connectTimeout: CONNECT_TIMEOUT_MS });
    await connection.end();
  } catch (error) {
    throw new StoreUnreachable("mysql", "MYSQL_URL", shown(url), error);
  }
  await migrateDatabase(url);
}

/** Opens and closes one connection to the broker. */
export async function checkRabbitmq(url: string): Promise<void> {
  try {
    const connection = await amqp.connect(url, { timeout: CONNECT_TIMEOUT_MS });
    await connection.close();
  } catch (error) {
    throw new StoreUnreachable("rabbitmq", "AMQP_URL", shown(url), error);
  }
}

export interface DevMongo {
  url: string;
  /** Stops the stand-in, if dev started one. */
  stop(): Promise<void>;
}

/**
 * MONGODB_URL as given, unless it is (or, unset, would be) the local default address and
 * nothing answers there: then the stand-in, in this process, with a warning.
 */
export async function chooseMongo(configured: string | undefined, log: Logger): Promise<DevMongo> {
  const local = !configured || /^mongodb:\/\/(127\.0\.0\.1|localhost)(:27017)?(\/|\?|$)/.test(configured);
  if (!local || (await answers("127.0.0.1", 27017))) {
    const url = configured ?? LOCAL_MONGODB;
    const source = configured ? "MONGODB_URL" : "127.0.0.1:27017";
    log.info({ event: "dev.mongo", url: shown(url), source }, `MongoDB: ${shown(url)} (${source})`);
    return { url, stop: async () => {} };
  }
  const standin = await startMongoStandin();
  const url = `${standin.url}/m3dio`;
  log.warn(
    { event: "dev.mongo_standin", url },
    `no MongoDB answers on 127.0.0.1:27017: started the in-memory stand-in at ${url}; ITS DATA (jobs, videos, MP3s) IS LOST WHEN DEV STOPS`,
  );
  return { url, stop: () => standin.stop() };
}

/** Whether something accepts a TCP connection at host:port (within a second). */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host, port, timeout: 1000 });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}
