// What several test files share within one `bun test` process (all files run in one
// process, one after another, with one module cache): started by the first file that
// asks for it, handed to the next as it is, and stopped once after the last test of the
// run (test/support/preload.ts registers stopShared). A file run alone starts and
// stops it the same way.
const running = new Map<string, { value: Promise<unknown>; stop: () => Promise<void> }>();

/** The thing called `key`, started with `start` the first time; `stop` runs after the last test. */
export function shared<T>(key: string, start: () => Promise<T>, stop: (value: T) => Promise<void>): Promise<T> {
  const found = running.get(key);
  if (found) return found.value as Promise<T>;
  const value = start();
  // A failed start is forgotten, so the next file tries again (and reports its own error).
  value.catch(() => running.delete(key));
  running.set(key, { value, stop: async () => stop(await value) });
  return value;
}

/** Stops everything shared, newest first; every stop is tried, then the failures are thrown together. */
export async function stopShared(): Promise<void> {
  const failures: unknown[] = [];
  for (const [key, { value, stop }] of [...running].reverse()) {
    running.delete(key);
    if (!(await value.then(() => true).catch(() => false))) continue;
    await stop().catch((error: unknown) => failures.push(error));
  }
  if (failures.length) throw new AggregateError(failures, `shared: ${failures.length} stop(s) failed`);
}
