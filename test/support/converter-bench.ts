// The bench the converter tests share: MongoDB (MONGODB_URL or the stand-in), a RabbitMQ
// vhost of the file's own, the test's queue connection, the file and job stores, a temp dir
// the converters work in, and the converters' parsed log. Registers the file's beforeAll
// (connect) and afterAll (close, drop, remove the temp dir); its fields are set once
// beforeAll has run.
import { afterAll, beforeAll, expect } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ObjectId } from "mongodb";
import { converterContext } from "../../converter/context.ts";
import { ConverterConfig } from "../../converter.ts";
import { parseConfig } from "../../lib/config.ts";
import { type BucketName, fileStore } from "../../lib/files.ts";
import { jobStore } from "../../lib/jobs.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo, type Mongo } from "../../lib/mongo.ts";
import type { ConversionOptions } from "../../lib/options.ts";
import { connectQueue, QUEUES, type Queue } from "../../lib/queue.ts";
import { settle } from "./jobs.ts";
import { startLocalConverter } from "./local-converter.ts";
import { dropTestDatabase, testMongoUrl } from "./mongo.ts";
import { createTestVhost } from "./rabbit.ts";

export interface ConverterBench {
  mongo: Mongo;
  mongoUrl: string;
  vhost: Awaited<ReturnType<typeof createTestVhost>>;
  queue: Queue;
  files: ReturnType<typeof fileStore>;
  jobs: ReturnType<typeof jobStore>;
  /** The converters' temp dir. */
  tmp: string;
  /** The test's own (silent) logger. */
  log: ReturnType<typeof createLogger>;
  /** What the in-process converters log, parsed: a test waits for what a worker says it did. */
  entries: Record<string, unknown>[];
  /** A converter with a queue connection of its own, configured by the bench's env then `env`; `stop()` stops both. */
  startConverter(env?: Record<string, string>): ReturnType<typeof startLocalConverter>;
  /** The converter's context on the bench's stores, for calling its parts directly. */
  context(): ReturnType<typeof converterContext>;
  /** Waits until every temp directory is gone (the worker removes it last, after the job reads done). */
  expectTmpEmpty(): Promise<void>;
  /**
   * Queues a job as the gateway leaves it: `video` in GridFS, the record queued with
   * `contentType` (and `options`, if any), the message published. Returns the job's id.
   */
  queueUpload(video: Readable, filename: string, contentType: string, options?: ConversionOptions): Promise<ObjectId>;
  /** Saves a file of a bucket to `path`; returns `path`. */
  saveFile(bucket: BucketName, id: ObjectId, path: string): Promise<string>;
  /** Runs `stop` at the end, before the connections close (a converter the file keeps running). */
  beforeTeardown(stop: () => Promise<void> | undefined): void;
}

/** The bench of a test file named `name`; its converters start with `env` over LOG_LEVEL info and a 5 s grace. */
export function converterBench(name: string, env: Record<string, string> = {}): ConverterBench {
  const entries: Record<string, unknown>[] = [];
  const converterLog = createLogger("converter", "info", {
    write: (line: string) => void entries.push(JSON.parse(line)),
  });
  const teardown: (() => Promise<void> | undefined)[] = [];
  const bench = {
    tmp: mkdtempSync(join(tmpdir(), `m3dio-${name}-`)),
    log: createLogger(name, "silent"),
    entries,
    startConverter: (more: Record<string, string> = {}) =>
      startLocalConverter(
        {
          mongo: bench.mongo,
          mongoUrl: bench.mongoUrl,
          amqpUrl: bench.vhost.url,
          tmpDir: bench.tmp,
          log: converterLog,
        },
        { LOG_LEVEL: "info", SHUTDOWN_GRACE_MS: "5000", ...env, ...more },
      ),
    context: () => {
      const config = parseConfig(ConverterConfig, {
        MONGODB_URL: bench.mongoUrl,
        AMQP_URL: bench.vhost.url,
        TMP_DIR: bench.tmp,
      });
      return converterContext({ config, log: bench.log, mongo: bench.mongo, queue: bench.queue });
    },
    expectTmpEmpty: async () => {
      expect(
        await settle(
          async () => readdirSync(bench.tmp),
          (left) => left.length === 0,
        ),
      ).toEqual([]);
    },
    queueUpload: async (video: Readable, filename: string, contentType: string, options?: ConversionOptions) => {
      const stored = await bench.files.upload("videos", video, { owner: "42", filename, contentType });
      const job = await bench.jobs.create({
        userId: "42",
        email: "owner@example.com",
        videoFileId: stored.id,
        source: { kind: "upload", filename, bytes: stored.bytes, contentType },
        ...(options ? { options } : {}),
      });
      const jobId = job._id.toHexString();
      await bench.queue.publish(QUEUES.video, { jobId }, { messageId: jobId });
      return job._id;
    },
    saveFile: async (bucket: BucketName, id: ObjectId, path: string) => {
      await Bun.write(
        path,
        new Response(Readable.toWeb(bench.files.download(bucket, id)) as unknown as ReadableStream),
      );
      return path;
    },
    beforeTeardown: (stop: () => Promise<void> | undefined) => void teardown.push(stop),
  } as ConverterBench;

  beforeAll(async () => {
    bench.mongoUrl = await testMongoUrl();
    bench.mongo = await connectMongo(bench.mongoUrl);
    bench.vhost = await createTestVhost();
    bench.queue = await connectQueue(bench.vhost.url, bench.log);
    bench.files = fileStore(bench.mongo.db);
    bench.jobs = jobStore(bench.mongo.db);
  });
  afterAll(async () => {
    for (const stop of teardown) await stop();
    await bench.queue?.close();
    await bench.vhost?.drop();
    await bench.mongo?.close();
    if (bench.mongoUrl) await dropTestDatabase(bench.mongoUrl);
    rmSync(bench.tmp, { recursive: true, force: true });
  });
  return bench;
}
