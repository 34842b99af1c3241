// Work a request starts but does not wait for (a reset email, looked up and queued after
// the answer, so the answer's timing says nothing about the address). Failures are
// logged; `settled()` waits for what is under way, so auth's stop lets it finish.
import type { Logger } from "../lib/log.ts";

export function background(log: Logger) {
  const running = new Set<Promise<void>>();
  return {
    run(what: string, work: () => Promise<void>): void {
      const task = work()
        .catch((error) => log.warn({ event: "background.failed", what, err: error }, `${what} failed`))
        .finally(() => running.delete(task));
      running.add(task);
    },
    async settled(): Promise<void> {
      while (running.size) await Promise.allSettled(running);
    },
  };
}
export type Background = ReturnType<typeof background>;
