// Undoing that must not be lost to a store outage: a rollback tried when the store
// has just failed (an upload cut off by a MongoDB outage) usually fails too, and
// would leave a half-written file or a job nobody will ever finish. `cleanUp` tries
// at once and, if that fails, again in the background (1 s, doubling to 30 s) until
// it works or `forMs` has passed. It never throws, so the caller reports the
// original error. It lives as long as the process does: a clean-up pending when the
// process stops is logged as abandoned.
import type { Logger } from "./log.ts";

export interface CleanUpOptions {
  log?: Logger;
  /** How long to keep trying (15 minutes). */
  forMs?: number;
  /** First pause between tries (1000 ms); doubles up to 30 s. */
  firstDelayMs?: number;
  /**
   * The first try too happens in the background, and the call resolves (false) at once: for
   * a store that has just failed, where a try now would most likely wait out the driver's
   * server selection and fail as well, holding back the caller's error answer.
   */
  deferred?: boolean;
}

const pending = new Set<string>();

/** Clean-ups not done yet (for a graceful stop's log line). */
export function pendingCleanUps(): string[] {
  return [...pending];
}

/** Runs `action` now; if it throws, keeps retrying in the background. Resolves true if the first try worked. */
export async function cleanUp(
  what: string,
  action: () => Promise<unknown>,
  { log, forMs = 15 * 60_000, firstDelayMs = 1000, deferred = false }: CleanUpOptions = {},
): Promise<boolean> {
  if (!deferred) {
    try {
      await action();
      return true;
    } catch (error) {
      log?.warn({ err: error, what }, "clean-up failed; will retry in the background");
    }
  }
  const deadline = Date.now() + forMs;
  const key = `${what} #${Math.random().toString(36).slice(2, 8)}`;
  pending.add(key);
  const retry = (delay: number) => {
    const timer = setTimeout(async () => {
      try {
        await action();
        pending.delete(key);
        log?.info({ what }, "clean-up done after a retry");
      } catch (error) {
        if (Date.now() + delay > deadline) {
          pending.delete(key);
          log?.error({ err: error, what }, "clean-up abandoned: it kept failing");
        } else retry(Math.min(Math.max(delay * 2, firstDelayMs), 30_000));
      }
    }, delay);
    timer.unref?.(); // never keeps a stopping process alive
  };
  retry(deferred ? 0 : firstDelayMs);
  return false;
}
