// Every queue's message, defined once: the gateway publishes `video`, the converter
// consumes it and publishes `mp3`, the notifier consumes `mp3`. A job's message carries
// ids only; consumers read everything else from the `jobs` collection, so a message is
// small and never stale. auth publishes `email` (the notifier sends it: a token only
// the message holds, auth keeps its hash) and `account` (the converter removes the
// account's jobs and files). `lib/queue.ts` validates each delivery against its queue's
// schema before a handler sees it: a malformed message is dead-lettered with one log line.
import { createHash } from "node:crypto";
import { type Static, Type } from "@sinclair/typebox";

const JobId = Type.String({ pattern: "^[0-9a-f]{24}$", description: "the job's id (a MongoDB ObjectId in hex)" });

export const VideoMessage = Type.Object({ jobId: JobId }, { description: "a job to convert" });
export type VideoMessage = Static<typeof VideoMessage>;

export const Mp3Message = Type.Object(
  { jobId: JobId, status: Type.Union([Type.Literal("done"), Type.Literal("failed")]) },
  { description: "a job finished: tell its owner" },
);
export type Mp3Message = Static<typeof Mp3Message>;

/** auth's user ids: bigint auto-increment, as decimal text. */
const UserId = Type.String({ pattern: "^[1-9][0-9]{0,19}$", description: "the user's id (decimal)" });

export const EMAIL_KINDS = ["verify", "reset"] as const;
export type EmailKind = (typeof EMAIL_KINDS)[number];

export const EmailMessage = Type.Object(
  {
    kind: Type.Union(EMAIL_KINDS.map((kind) => Type.Literal(kind))),
    to: Type.String({ minLength: 3, maxLength: 254 }),
    token: Type.String({ pattern: "^[A-Za-z0-9_-]{43}$", description: "the single-use token the link carries" }),
    userId: UserId,
  },
  { description: "an account email: the address's verification link, or a password reset link" },
);
export type EmailMessage = Static<typeof EmailMessage>;

export const AccountMessage = Type.Object(
  { userId: UserId },
  { description: "this account is being deleted: remove its jobs, files, keys and webhooks" },
);
export type AccountMessage = Static<typeof AccountMessage>;

/**
 * A token's public name: the start of its SHA-256, which auth stores (whole) instead of the
 * token. The `email` message id (`<kind>-<userId>-<id>`) and the notifier's Resend idempotency
 * key (`email-<kind>-<id>`) use it, so the token itself is never a key or a log field.
 */
export function emailTokenId(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 24);
}

/** Queue name → the schema of its messages. */
export const MESSAGES = { video: VideoMessage, mp3: Mp3Message, email: EmailMessage, account: AccountMessage } as const;
export type QueueName = keyof typeof MESSAGES;
export type MessageOf<Q extends QueueName> = Static<(typeof MESSAGES)[Q]>;
export const QUEUES = { video: "video", mp3: "mp3", email: "email", account: "account" } as const satisfies Record<
  QueueName,
  QueueName
>;
