// How a conversion can end other than done: the two outcomes the consumer treats
// apart from transient trouble (which is any other error, retried by the queue).

/** The video itself is the problem: retrying cannot help. The message is for the user. */
export class BadInput extends Error {
  override name = "BadInput";
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
