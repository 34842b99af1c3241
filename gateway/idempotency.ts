// `Idempotency-Key` on POST /jobs: a program that cannot tell whether its request got
// through sends it again with the same key, and the same job answers, once.
//
// The key is claimed before a byte of the body is read: a record (userId, key) in
// MongoDB's `idempotency_keys`, unique on that pair, state "pending". The request that
// inserts it (the first) runs the intake, feeding a digest of what it asks for
// (gateway/request-digest.ts), and then stores its answer (202 and the job) with the digest:
// state "done". Kept 24 h (a TTL index on createdAt; older records count as gone).
//
// Every other request with the key (a repeat, or one racing the first) stores nothing: it
// reads its own body only to digest it, then waits for the first one's answer, up to
// WAIT_FOR_FIRST_MS. Same digest → the first answer again (202, the same body, and
// `Idempotent-Replayed: true`); another digest → 422 naming Idempotency-Key; the first
// still running → 409 (Retry-After), as is a first request that failed (its claim is
// released, so the key may be sent again). A failed first request is not remembered: only
// a job made is. A claim whose gateway died is taken over once it is ABANDONED_MS old
// (the first request touches it every HEARTBEAT_MS while it works).
import { type Collection, type Db, ObjectId } from "mongodb";
import { cleanUp } from "../lib/cleanup.ts";
import type { Logger } from "../lib/log.ts";
import { isDuplicateKey } from "../lib/mongo.ts";
import { Conflict, HttpProblem, Unprocessable } from "../lib/problem.ts";
import type { Caller } from "./bearer.ts";
import { digestOnly, type RequestDigest, requestDigest } from "./request-digest.ts";

export const IDEMPOTENCY_HEADER = "Idempotency-Key";
export const MAX_KEY_LENGTH = 255;
/** How long a key answers the same job again. */
export const REMEMBERED_MS = 24 * 3_600_000;
/** How long a repeat waits for the first request's answer once its own body is read. */
export const WAIT_FOR_FIRST_MS = 10_000;
const HEARTBEAT_MS = 10_000;
const ABANDONED_MS = 6 * HEARTBEAT_MS;
const POLL_MS = 100;

/** What the first request answered, as it is answered again. */
export interface Answer {
  status: number;
  body: unknown;
}

interface KeyRecord {
  _id: ObjectId;
  userId: string;
  key: string;
  state: "pending" | "done";
  /** The request holding a pending record. */
  claim: ObjectId;
  touchedAt: Date;
  createdAt: Date;
  bodyHash?: string;
  jobId?: string;
  answer?: Answer;
}

/** The request's Idempotency-Key, if it has one; 422 naming it when it is empty or too long. */
export function idempotencyKey(headers: Headers): string | undefined {
  const key = headers.get(IDEMPOTENCY_HEADER);
  if (key === null) return undefined;
  if (key.length === 0 || key.length > MAX_KEY_LENGTH)
    throw new Unprocessable(`the ${IDEMPOTENCY_HEADER} header must be 1 to ${MAX_KEY_LENGTH} characters`, [
      { field: IDEMPOTENCY_HEADER, message: `must be 1 to ${MAX_KEY_LENGTH} characters` },
    ]);
  return key;
}

export function idempotentRequests(db: Db, { log, maxUploadBytes }: { log: Logger; maxUploadBytes: number }) {
  const records: Collection<KeyRecord> = db.collection<KeyRecord>("idempotency_keys");

  /** Claims the key for this request (answers the claim), or answers the record that holds it. */
  async function claim(userId: string, key: string): Promise<{ claim: ObjectId } | { held: KeyRecord }> {
    for (let tries = 0; ; tries++) {
      const now = new Date();
      const claim = new ObjectId();
      try {
        await records.insertOne({
          _id: new ObjectId(),
          userId,
          key,
          state: "pending",
          claim,
          touchedAt: now,
          createdAt: now,
        });
        return { claim };
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      const held = await records.findOne({ userId, key });
      if (!held && tries < 3) continue; // released meanwhile: claim it
      if (!held) throw new Conflict("a request with this Idempotency-Key is in progress; try again shortly");
      const expired = held.createdAt.getTime() <= now.getTime() - REMEMBERED_MS;
      const abandoned = held.state === "pending" && held.touchedAt.getTime() <= now.getTime() - ABANDONED_MS;
      if ((!expired && !abandoned) || tries >= 3) return { held };
      // Taken over only if no one else took it meanwhile (the same record, as it was read).
      const taken = await records.updateOne(
        { _id: held._id, claim: held.claim, touchedAt: held.touchedAt },
        {
          $set: { state: "pending", claim, touchedAt: now, createdAt: now },
          $unset: { bodyHash: "", jobId: "", answer: "" },
        },
      );
      if (taken.modifiedCount === 1) {
        log.info(
          { event: "idempotency.taken_over", userId, expired, abandoned },
          "an old claim of the key is taken over",
        );
        return { claim };
      }
    }
  }

  /** The first request: runs `work` with a digest, remembers its answer; a failure releases the key. */
  async function first(
    userId: string,
    key: string,
    claim: ObjectId,
    work: (digest: RequestDigest) => Promise<Answer & { jobId: string }>,
  ) {
    const mine = { userId, key, claim }; // found by the unique index, and only while this request holds it
    const touch = setInterval(() => {
      records.updateOne(mine, { $set: { touchedAt: new Date() } }).catch(() => {});
    }, HEARTBEAT_MS);
    const digest = requestDigest();
    try {
      const { jobId, ...answer } = await work(digest);
      const done = { state: "done" as const, bodyHash: digest.value(), jobId, answer, touchedAt: new Date() };
      // The job is made: its answer stands even if this write must wait for MongoDB (retried in the background).
      await cleanUp(`remember the answer of claim ${claim}`, () => records.updateOne(mine, { $set: done }), {
        log,
      });
      return answer;
    } catch (error) {
      await cleanUp(`release claim ${claim}`, () => records.deleteOne({ ...mine, state: "pending" }), { log });
      log.info(
        { event: "idempotency.released", userId },
        "the first request with the key failed; the key is free again",
      );
      throw error;
    } finally {
      clearInterval(touch);
    }
  }

  /** A repeat: its own digest, then the first request's answer when it has one (bounded wait). */
  async function repeat(userId: string, key: string, digestRepeat: () => Promise<string>): Promise<Answer> {
    const bodyHash = await digestRepeat();
    const deadline = Date.now() + WAIT_FOR_FIRST_MS;
    for (;;) {
      const held = await records.findOne({ userId, key });
      if (held?.state === "done" && held.createdAt.getTime() > Date.now() - REMEMBERED_MS) {
        if (held.bodyHash !== bodyHash) {
          log.info(
            { event: "idempotency.mismatch", userId, jobId: held.jobId },
            "a key came back with another request",
          );
          throw new Unprocessable(
            `this ${IDEMPOTENCY_HEADER} was used with a different request; use a new key for a new request`,
            [{ field: IDEMPOTENCY_HEADER, message: "was used with a different request in the last 24 hours" }],
          );
        }
        log.info({ event: "idempotency.replayed", userId, jobId: held.jobId }, "the first answer given again");
        return held.answer!;
      }
      if (!held || held.state === "done")
        throw new Conflict(`the first request with this ${IDEMPOTENCY_HEADER} did not finish; send it again`);
      if (Date.now() > deadline) {
        log.info({ event: "idempotency.in_progress", userId }, "a repeat found the first request still running");
        throw new HttpProblem(
          409,
          "Conflict",
          `a request with this ${IDEMPOTENCY_HEADER} is in progress; try again when it has finished`,
          {},
          { "Retry-After": "5" },
        );
      }
      await Bun.sleep(POLL_MS);
    }
  }

  return {
    async ensureIndexes(): Promise<void> {
      await records.createIndex({ userId: 1, key: 1 }, { name: "idempotency_by_user_key", unique: true });
      await records.createIndex(
        { createdAt: 1 },
        { name: "idempotency_expiry", expireAfterSeconds: Math.round(REMEMBERED_MS / 1000) },
      );
    },

    /**
     * Answers the request once per (user, key): the first runs `work` (which makes the job,
     * feeding the digest); a repeat gets the first answer again (`replayed`) or a problem.
     * A repeat's digest is its body's (`digestOnly`), or `digestRepeat`'s for a request
     * whose headers say it all (POST /uploads, whose upload's id stands in `jobId`).
     */
    async once(
      user: Caller,
      key: string,
      request: Request,
      work: (digest: RequestDigest) => Promise<Answer & { jobId: string }>,
      digestRepeat: () => Promise<string> = () => digestOnly(request, maxUploadBytes),
    ): Promise<Answer & { replayed: boolean }> {
      const claimed = await claim(user.id, key);
      if ("claim" in claimed) return { ...(await first(user.id, key, claimed.claim, work)), replayed: false };
      return { ...(await repeat(user.id, key, digestRepeat)), replayed: true };
    },
  };
}
export type IdempotentRequests = ReturnType<typeof idempotentRequests>;
