// A sweep every replica runs at once, agreeing through nothing but the swept documents:
// each due item is claimed by a conditional update that stamps it with a lease, then
// removed. A sweeper killed in between leaves its claim; once the claim is older than the
// lease the next sweep (this replica's or another's) takes it over and finishes it.
// Between scheduled sweeps, `everyMs` give or take a tenth, so replicas spread out.

export interface LeaseSweep<T> {
  /** One due item no live sweeper holds (a claim older than `leaseMs` is a dead one's), now claimed; or null. */
  claim(now: Date, leaseMs: number): Promise<T | null>;
  /** Removes a claimed item; answers whether it counts as removed by this sweeper. */
  remove(item: T): Promise<boolean>;
  /** A scheduled sweep that threw (MongoDB away): log it; the next sweep tries again. */
  failed(error: unknown): void;
  /** Runs before the first scheduled sweep, inside it (its failure is that sweep's). */
  beforeFirst?: () => Promise<void>;
  /** When the first scheduled sweep runs after start(). */
  firstDelayMs(everyMs: number): number;
}

export interface LeaseSweeperOptions {
  /** Pause between sweeps (10 minutes, give or take a tenth so replicas spread out). */
  everyMs?: number;
  /** How long a claim holds; an older one is a dead sweeper's, taken over (5 minutes). */
  leaseMs?: number;
}

export function leaseSweeper<T>(
  { claim, remove, failed, beforeFirst, firstDelayMs }: LeaseSweep<T>,
  { everyMs = 10 * 60_000, leaseMs = 5 * 60_000 }: LeaseSweeperOptions = {},
) {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();

  /** Removes every due item no live sweeper holds, one claim at a time; answers how many this sweeper removed. */
  async function sweepOnce(): Promise<number> {
    let swept = 0;
    while (!stopped) {
      const claimed = await claim(new Date(), leaseMs);
      if (!claimed) break;
      if (await remove(claimed)) swept++;
    }
    return swept;
  }

  async function scheduledSweep(first: boolean): Promise<void> {
    try {
      if (first) await beforeFirst?.();
      await sweepOnce();
    } catch (error) {
      failed(error);
    }
  }

  function schedule(delayMs: number, first = false) {
    timer = setTimeout(() => {
      running = scheduledSweep(first).finally(() => {
        if (!stopped) schedule(everyMs * (0.9 + Math.random() * 0.2));
      });
    }, delayMs);
    timer.unref?.();
  }

  return {
    sweepOnce,
    start() {
      stopped = false;
      schedule(firstDelayMs(everyMs), true);
    },
    /**
     * No new claims; the item being swept gets a moment to finish. Not longer: with MongoDB
     * away a sweep could wait minutes, and a claim left behind is taken over later anyway.
     */
    async stop(waitMs = 2000) {
      stopped = true;
      clearTimeout(timer);
      await Promise.race([running, Bun.sleep(waitMs)]);
    },
  };
}

export type LeaseSweeper = ReturnType<typeof leaseSweeper>;
