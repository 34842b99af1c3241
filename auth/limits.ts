// The two limits that keep password hashing from being an open tap: a fixed number of
// hashes at once for the whole process (argon2id is deliberately slow and memory-hungry),
// and per-address rates for logging in and registering.

/**
 * At most `size` holders at once, and at most `waiting` more waiting their turn (first
 * come, first served): two logins arriving together wait one hash rather than fail, but
 * past that a request is refused at once instead of joining a queue that makes every
 * login wait. `take()` answers a release function, or undefined when refused.
 */
export function hashSlots(size: number, waiting = size) {
  let taken = 0;
  const queue: ((release: () => void) => void)[] = [];
  const holder = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = queue.shift();
      if (next)
        next(holder()); // the slot passes straight on
      else taken--;
    };
  };
  return {
    async take(): Promise<(() => void) | undefined> {
      if (taken < size) {
        taken++;
        return holder();
      }
      if (queue.length >= waiting) return undefined;
      return new Promise((resolve) => queue.push(resolve));
    },
    get taken() {
      return taken;
    },
    get waiting() {
      return queue.length;
    },
  };
}
export type HashSlots = ReturnType<typeof hashSlots>;

interface Bucket {
  tokens: number;
  at: number;
  /** Refused since last allowed. */
  refusing: boolean;
}

export interface RateOptions {
  /** Requests allowed per key within `windowMs`, also as one burst. */
  limit: number;
  windowMs: number;
  /** Keys held at most; past it the idle ones go first, then the oldest. */
  maxKeys?: number;
  now?: () => number;
}

/**
 * A token bucket per key (a client address): `limit` tokens, refilled evenly over
 * `windowMs`. Held in this process's memory: with several auth replicas each allows
 * `limit`, which still bounds an address, and needs no store round trip per request.
 */
export function rateLimiter({ limit, windowMs, maxKeys = 100_000, now = Date.now }: RateOptions) {
  const perMs = limit / windowMs;
  const buckets = new Map<string, Bucket>();
  const level = (bucket: Bucket, time: number) => Math.min(limit, bucket.tokens + (time - bucket.at) * perMs);

  /** Forgets buckets that have filled up again: a full bucket is the same as none. */
  function prune(): void {
    const time = now();
    for (const [key, bucket] of buckets) if (level(bucket, time) >= limit) buckets.delete(key);
  }

  return {
    /**
     * Takes one request's token: undefined when allowed, else the seconds until one is
     * free, and whether this is the first refusal since the key was last allowed (worth
     * one log line; the rest of a flood is not).
     */
    take(key: string): { retryAfterSeconds: number; first: boolean } | undefined {
      const time = now();
      let bucket = buckets.get(key);
      if (!bucket) {
        if (buckets.size >= maxKeys) prune();
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
        bucket = { tokens: limit, at: time, refusing: false };
        buckets.set(key, bucket);
      }
      bucket.tokens = level(bucket, time);
      bucket.at = time;
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        bucket.refusing = false;
        return undefined;
      }
      const first = !bucket.refusing;
      bucket.refusing = true;
      return { retryAfterSeconds: (1 - bucket.tokens) / perMs / 1000, first };
    },
    prune,
    get size() {
      return buckets.size;
    },
  };
}
export type RateLimiter = ReturnType<typeof rateLimiter>;
