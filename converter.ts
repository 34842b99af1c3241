// converter: consumes `video`, turns the job's video (or audio file) into a checked MP3
// with ffmpeg as the job's options say (converter/plan.ts: bitrate, trim, track, channels,
// loudness, tags, cover, chapters), stores it in GridFS `mp3s` (its cover in `covers`),
// marks the job done and publishes to `mp3`.
// Bad input fails the job once, with a reason a person understands; transient
// trouble is retried a bounded number of times, then dead-lettered. Nothing loops.
// Each message in hand has an AbortController: stopping aborts them after the grace
// period, which stops the link download or ffmpeg, and the message is handed back.
// Deleting a job stops its work the same way (converter/watch.ts); ffmpeg and ffprobe
// open only the job's own file with the demuxer it was sniffed as (converter/inputs.ts)
// and run within bounds on length and time (converter/limits.ts). Jobs past their
// retention are removed with their files by every converter's sweeper (converter/sweeper.ts).
import { tmpdir } from "node:os";
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { accountRemover } from "./converter/accounts.ts";
import { type ConverterContext, converterContext } from "./converter/context.ts";
import type { LinkDownloads } from "./converter/download.ts";
import { HandedBack } from "./converter/errors.ts";
import { giveUp, handleVideo } from "./converter/handle.ts";
import { retentionSweeper } from "./converter/sweeper.ts";
import { removeDeadWorkersDirs } from "./converter/workdir.ts";
import {
  AmqpUrl,
  Flag,
  LogLevel,
  MaxUploadBytes,
  MetricsPort,
  MongoUrl,
  Port,
  UserStorageBytes,
} from "./lib/config.ts";
import { health, startupCheck } from "./lib/health.ts";
import { DEFAULT_RETENTION_HOURS } from "./lib/jobs.ts";
import { AllowHosts } from "./lib/link.ts";
import type { Logger } from "./lib/log.ts";
import type { VideoMessage } from "./lib/messages.ts";
import { connectMongo, type Mongo, retryAfterMongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { CONNECT_IN_BACKGROUND, connectQueue, type Delivery, QUEUES, type Queue } from "./lib/queue.ts";
import { type Built, runService, type Service } from "./lib/runner.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const ConverterConfig = Type.Object({
  PORT: Port(3002),
  METRICS_PORT: MetricsPort(9103),
  LOG_LEVEL: LogLevel,
  MONGODB_URL: MongoUrl,
  AMQP_URL: AmqpUrl,
  MAX_UPLOAD_BYTES: MaxUploadBytes,
  USER_STORAGE_BYTES: UserStorageBytes,
  CONVERTER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 32, default: 1, description: "conversions at once" }),
  MP3_QUALITY: Type.Integer({ minimum: 0, maximum: 9, default: 2, description: "LAME VBR quality" }),
  MP3_BITRATE_KBPS: Type.Optional(
    Type.Integer({ minimum: 32, maximum: 320, description: "constant bitrate instead of VBR" }),
  ),
  MAX_AUDIO_SECONDS: Type.Integer({
    minimum: 1,
    default: 14_400,
    description: "longest audio converted, in seconds; a longer source fails the job",
  }),
  KEEP_VIDEOS: Flag(false, "keep the source video after success"),
  RETENTION_HOURS: Type.Integer({
    minimum: 1,
    default: DEFAULT_RETENTION_HOURS,
    description: "hours a finished job, its video and its MP3 are kept; then the sweeper removes them",
  }),
  SHUTDOWN_GRACE_MS: Type.Integer({
    minimum: 0,
    default: 25_000,
    description: "time running conversions get on SIGTERM",
  }),
  MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 20, default: 3, description: "tries before a job is given up" }),
  URL_ALLOW_HOSTS: AllowHosts,
  URL_TIMEOUT_MS: Type.Integer({
    minimum: 1,
    default: 60_000,
    description: "longest a link download may take, redirects included (for a video page: yt-dlp's whole run)",
  }),
  LINK_PAGES: Flag(true, "follow links to video pages with yt-dlp (false: a page is refused as not a video)"),
  TMP_DIR: Type.String({ default: tmpdir(), minLength: 1, description: "where videos are spooled while converting" }),
});
export type ConverterConfig = typeof ConverterConfig.static;

// ── models: the `video` and `mp3` messages (lib/messages.ts), the job (lib/jobs.ts) ──
// ── errors: BadInput, HandedBack (converter/errors.ts) ────────────────────────

// ── the consumer ────────────────────────────────────────────────────────────
// A message's steps live in converter/: handle.ts (the message start to end), convert.ts
// (download, then ffmpeg: encode.ts), leftovers.ts (MP3s and covers no job points to);
// context.ts is what they share.
export interface ConverterDeps {
  config: ConverterConfig;
  log: Logger;
  mongo: Mongo;
  queue: Queue;
}

export function createConverter(deps: ConverterDeps): Service {
  const { config, log, mongo, queue } = deps;
  const context = converterContext(deps);
  const inHand = messagesInHand(context);
  /** Expired jobs go (converter/sweeper.ts): every converter sweeps, claims keep them apart. */
  const sweeper = retentionSweeper(context);
  /** Deleted accounts' data goes (converter/accounts.ts). */
  const accounts = accountRemover(context);
  const startup = startupCheck();

  const app = new Elysia({ name: "converter" })
    .use(problems(log))
    .use(context.metrics.plugin)
    .use(
      health({ startup: startup.check, mongodb: () => mongo.ping(), rabbitmq: () => queue.ping() }, () =>
        toolReport(context.links),
      ),
    );

  return {
    app,
    metricsApp: context.metrics.app,
    start: () =>
      startup.run(async () => {
        await removeDeadWorkersDirs(config.TMP_DIR, log);
        await context.jobs.ensureIndexes();
        const onExhausted = (body: VideoMessage) => giveUp(context, body);
        const options = { prefetch: config.CONVERTER_CONCURRENCY, maxAttempts: config.MAX_ATTEMPTS, onExhausted };
        await queue.consume(QUEUES.video, options, inHand.consume);
        await accounts.start();
        const ytdlp = (await toolReport(context.links))["yt-dlp"];
        log.info(
          { event: "converter.consuming", concurrency: config.CONVERTER_CONCURRENCY, ytdlp },
          "converter consuming",
        );
        sweeper.start();
      }),
    /** Stop taking work; give the messages in hand the grace period, then hand back what is not done. */
    async stop() {
      accounts.stop();
      await Promise.all([queue.stopConsuming(), sweeper.stop()]);
      await inHand.handBack(config.SHUTDOWN_GRACE_MS);
    },
  };
}

/**
 * The video messages in hand, each with a controller of its own: `consume` takes one,
 * MongoDB outages waited out (until its signal) before a retry; `handBack` gives them
 * `graceMs`, then aborts what is not done so that its message goes back to the queue.
 */
function messagesInHand(context: ConverterContext) {
  const { log, mongo, queue } = context;
  const inHand = new Set<AbortController>();
  return {
    async consume(delivery: Delivery<VideoMessage>): Promise<void> {
      const controller = new AbortController();
      inHand.add(controller);
      try {
        const handler = (held: Delivery<VideoMessage>) => handleVideo(context, held, controller.signal);
        await retryAfterMongo(mongo, log, handler, { giveUp: () => controller.signal.aborted })(delivery);
      } finally {
        inHand.delete(controller);
      }
    },
    async handBack(graceMs: number): Promise<void> {
      const deadline = Date.now() + graceMs;
      while (queue.inFlight() > 0 && Date.now() < deadline) await Bun.sleep(100);
      // What is past ffmpeg (storing the MP3) finishes; the rest stops and is handed back.
      // Aborted again each round: a message whose handler began after the first round is caught too.
      const reason = new HandedBack("stopping");
      while (queue.inFlight() > 0) {
        for (const controller of inHand) controller.abort(reason);
        await Bun.sleep(50);
      }
    },
  };
}

/**
 * yt-dlp's version for the readiness answer. A converter without it still converts uploads
 * and video links, so it stays ready; links to pages then fail as "not a video".
 */
async function toolReport({ pages }: LinkDownloads): Promise<Record<string, string>> {
  if (!pages) return { "yt-dlp": "off (LINK_PAGES=false)" };
  return { "yt-dlp": (await pages.ytdlp) ?? "missing: links to video pages are refused" };
}

// ── start and graceful stop ─────────────────────────────────────────────────
async function build(config: ConverterConfig, log: Logger): Promise<Built> {
  // Neither waits for its store: start() is retried until they answer (lib/runner.ts).
  const mongo = await connectMongo(config.MONGODB_URL, { appName: "converter", waitForConnect: false });
  const queue = await connectQueue(config.AMQP_URL, log, CONNECT_IN_BACKGROUND);
  return { service: createConverter({ config, log, mongo, queue }), resources: [mongo, queue] };
}

// The grace period, then 10 s for ffmpeg to die, the hand-backs and the MP3s past ffmpeg
// to be stored; still within k3d's terminationGracePeriodSeconds (40 s for 25 s of grace).
if (import.meta.main)
  await runService("converter", ConverterConfig, build, (config) => ({
    httpGraceMs: 1000,
    deadlineMs: config.SHUTDOWN_GRACE_MS + 10_000,
  }));
