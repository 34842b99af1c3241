// Links to a job's MP3 that work without a bearer token: the "ready" email's download link
// and the links a user shares. `GET /jobs/:id/audio?expires=<unix>&sig=<base64url>` where
// sig = HMAC-SHA256(LINK_SIGNING_KEY, `${jobId}.${expires}.${shareVersion}`). The gateway
// checks them; the gateway and the notifier make them, with the same key. Revoking a job's
// links (DELETE /jobs/:id/share) bumps its `shareVersion`, which every earlier signature named.
//
//   const links = linkSigner(linkSigningKey(config.LINK_SIGNING_KEY, log));
//   const { path, expires } = links.audioPath(job);        // "/jobs/<id>/audio?expires=…&sig=…"
//   links.check(job, { expires, sig })                      // "valid" | "expired" | "invalid"
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ObjectId } from "mongodb";
import { DEFAULT_RETENTION_HOURS } from "./jobs.ts";
import type { Logger } from "./log.ts";

/** What a signature covers of a job. */
export interface LinkedJob {
  _id: ObjectId;
  expiresAt?: Date;
  shareVersion?: number;
}

/** The query a signed link carries, as it arrived (either may be missing or malformed). */
export interface LinkQuery {
  expires?: string;
  sig?: string;
}

export type LinkCheck = "valid" | "expired" | "invalid";

/** A fresh key: 32 random bytes as base64url (43 characters). */
export const generateLinkSigningKey = (): string => randomBytes(32).toString("base64url");

/**
 * The configured LINK_SIGNING_KEY, or, without one, a key for this process only: links it
 * signs stop working when the process ends, and a second process (the notifier beside the
 * gateway, another replica) cannot check them. Fine for a test, never for a deployment.
 */
export function linkSigningKey(configured: string | undefined, log: Logger): string {
  if (configured) return configured;
  log.warn(
    { event: "link_key.generated" },
    "LINK_SIGNING_KEY is not set: generated a key for this process only; download links in emails and shared links will not work across services or restarts",
  );
  return generateLinkSigningKey();
}

/** Signs and checks the audio links of jobs with `key`. */
export function linkSigner(key: string) {
  const secret = Buffer.from(key, "utf8");
  const signature = (job: LinkedJob, expires: number): Buffer =>
    createHmac("sha256", secret)
      .update(`${job._id.toHexString()}.${expires}.${job.shareVersion ?? 0}`)
      .digest();

  return {
    /**
     * A signed path to the job's MP3 (no origin), valid until the job expires (unix seconds);
     * a job without an expiry (finished before retention existed) gets the default retention from now.
     */
    audioPath(job: LinkedJob, now = Date.now()): { path: string; expires: number } {
      const until = job.expiresAt?.getTime() ?? now + DEFAULT_RETENTION_HOURS * 3_600_000;
      const expires = Math.floor(until / 1000);
      const sig = signature(job, expires).toString("base64url");
      return { path: `/jobs/${job._id.toHexString()}/audio?expires=${expires}&sig=${sig}`, expires };
    },

    /** Whether `query` is a signature of this job's current share version that has not expired; compared in constant time. */
    check(job: LinkedJob, { expires, sig }: LinkQuery, now = Date.now()): LinkCheck {
      if (!expires || !sig || !/^[0-9]{1,12}$/.test(expires) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return "invalid";
      const given = Buffer.from(sig, "base64url");
      const expected = signature(job, Number(expires));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return "invalid";
      return Number(expires) * 1000 <= now ? "expired" : "valid";
    },
  };
}

export type LinkSigner = ReturnType<typeof linkSigner>;
