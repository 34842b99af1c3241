// Every queue's message, defined once: the gateway publishes `video`, the converter
// consumes it and publishes `mp3`, the notifier consumes `mp3`. A message carries ids
// only; consumers read everything else from the `jobs` collection, so a message is
// small and never stale. `lib/queue.ts` validates each delivery against its queue's
// schema before a handler sees it: a malformed message is dead-lettered with one log line.
import { type Static, Type } from "@sinclair/typebox";

const JobId = Type.String({ pattern: "^[0-9a-f]{24}$", description: "the job's id (a MongoDB ObjectId in hex)" });

export const VideoMessage = Type.Object({ jobId: JobId }, { description: "a job to convert" });
export type VideoMessage = Static<typeof VideoMessage>;

export const Mp3Message = Type.Object(
  { jobId: JobId, status: Type.Union([Type.Literal("done"), Type.Literal("failed")]) },
  { description: "a job finished: tell its owner" },
);
export type Mp3Message = Static<typeof Mp3Message>;

/** Queue name → the schema of its messages. */
export const MESSAGES = { video: VideoMessage, mp3: Mp3Message } as const;
export type QueueName = keyof typeof MESSAGES;
export type MessageOf<Q extends QueueName> = Static<(typeof MESSAGES)[Q]>;
export const QUEUES = { video: "video", mp3: "mp3" } as const satisfies Record<QueueName, QueueName>;
