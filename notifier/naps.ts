// Naps that a wake cuts short: the webhook workers sleep until their next delivery is due
// and are woken when a new one is queued (notifier/webhooks.ts). A nap that ends on its own
// leaves the list of sleepers too, so a long idle spell holds nothing.

export function naps() {
  const sleepers = new Set<() => void>();
  return {
    /** Resolves after `ms`, or at the next `wake()` if that comes first. */
    nap(ms: number): Promise<void> {
      return new Promise((resume) => {
        const done = () => {
          clearTimeout(timer);
          sleepers.delete(done);
          resume();
        };
        const timer = setTimeout(done, ms);
        sleepers.add(done);
      });
    },
    /** Ends every nap under way. */
    wake(): void {
      for (const done of sleepers) done();
    },
    /** Naps under way. */
    get sleeping(): number {
      return sleepers.size;
    },
  };
}
