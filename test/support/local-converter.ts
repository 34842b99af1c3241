// A converter in the test's own process, on the test's MongoDB and RabbitMQ vhost, with a
// queue connection of its own: a test can stop it, or start another beside it, while the
// test's own connection stays open.
import { ConverterConfig, createConverter } from "../../converter.ts";
import { parseConfig } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import type { Mongo } from "../../lib/mongo.ts";
import { connectQueue } from "../../lib/queue.ts";

/** Where the converter works: the stores it uses, its temp dir, and the logger it and its connection write to. */
export interface ConverterPlace {
  mongo: Mongo;
  mongoUrl: string;
  amqpUrl: string;
  tmpDir: string;
  log: Logger;
}

/** Starts a converter configured by `env` (over the place's URLs and TMP_DIR); `stop()` stops it, then its connection. */
export async function startLocalConverter(
  { mongo, mongoUrl, amqpUrl, tmpDir, log }: ConverterPlace,
  env: Record<string, string> = {},
) {
  const queue = await connectQueue(amqpUrl, log);
  const config = parseConfig(ConverterConfig, { MONGODB_URL: mongoUrl, AMQP_URL: amqpUrl, TMP_DIR: tmpDir, ...env });
  const converter = createConverter({ config, log, mongo, queue });
  await converter.start();
  return {
    async stop() {
      await converter.stop();
      await queue.close();
    },
  };
}
