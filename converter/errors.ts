// How a conversion can end other than done: the two outcomes the consumer treats
// apart from transient trouble (which is any other error, retried by the queue).
import type { JobErrorKind } from "../lib/jobs.ts";

/**
 * The video itself is the problem: retrying cannot help. The message is for the user; the
 * kind (lib/jobs.ts JOB_ERROR_KINDS) chooses the advice their email gives.
 */
export class BadInput extends Error {
  override name = "BadInput";
  constructor(
    message: string,
    readonly kind: JobErrorKind = "damaged",
  ) {
    super(message);
  }
}

/** The worker is stopping: the job goes back to the queue untouched. The reason a message's signal is aborted with. */
export class HandedBack extends Error {
  override name = "HandedBack";
}

/** The job was deleted while its message was in hand: the work stops, the message is acknowledged. */
export class JobGone extends Error {
  override name = "JobGone";
  constructor() {
    super("the job was deleted");
  }
}

/**
 * A streamed source that cannot be read as a stream after all (a Matroska file whose header
 * does not give its length, an MP4 fragment this does not handle): it is spooled instead
 * (converter/convert.ts), where ffmpeg and ffprobe can read it as a file.
 */
export class NotStreamable extends Error {
  override name = "NotStreamable";
}
