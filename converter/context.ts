// What every step of a worker's conversions shares: its config, log, stores, queue and
// metrics, built once per worker. The steps (converter/handle.ts, convert.ts, leftovers.ts)
// are module-level functions that take it first; what belongs to one message (its signal,
// its log) is passed beside it.
import type { ObjectId } from "mongodb";
import type { ConverterConfig, ConverterDeps } from "../converter.ts";
import { type FileStore, fileStore } from "../lib/files.ts";
import { type JobStore, jobStore } from "../lib/jobs.ts";
import { parseAllowList } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import type { Mp3Message } from "../lib/messages.ts";
import type { Mongo } from "../lib/mongo.ts";
import { QUEUES, type Queue } from "../lib/queue.ts";
import { usageStore } from "../lib/usage.ts";
import type { LinkDownloads } from "./download.ts";
import { type ConverterMetrics, converterMetrics } from "./metrics.ts";
import { ytdlpVersion } from "./pages.ts";

export interface ConverterContext {
  config: ConverterConfig;
  log: Logger;
  mongo: Mongo;
  queue: Queue;
  files: FileStore;
  jobs: JobStore;
  metrics: ConverterMetrics;
  links: LinkDownloads;
}

export function converterContext({ config, log, mongo, queue }: ConverterDeps): ConverterContext {
  const files = fileStore(mongo.db, { log });
  const jobs = jobStore(mongo.db, { retentionHours: config.RETENTION_HOURS });
  const links: LinkDownloads = {
    files,
    jobs,
    allow: parseAllowList(config.URL_ALLOW_HOSTS),
    maxBytes: config.MAX_UPLOAD_BYTES,
    usage: usageStore(mongo.db),
    storageBytes: config.USER_STORAGE_BYTES,
    timeoutMs: config.URL_TIMEOUT_MS,
    // yt-dlp is asked its version once per worker: the health check reports it.
    pages: config.LINK_PAGES
      ? { ytdlp: ytdlpVersion(), maxSeconds: config.MAX_AUDIO_SECONDS, tmpDir: config.TMP_DIR }
      : null,
  };
  return { config, log, mongo, queue, files, jobs, metrics: converterMetrics(), links };
}

/** Tells the notifier (queue `mp3`) how a job ended. */
export const publishOutcome = ({ queue }: ConverterContext, jobId: ObjectId, status: Mp3Message["status"]) =>
  queue.publish(QUEUES.mp3, { jobId: jobId.toHexString(), status }, { messageId: `${jobId}-${status}` });
