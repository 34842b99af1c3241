// Ctrl-C (SIGINT) or a closed terminal (SIGTERM, SIGHUP): what the run has under way is put
// right first (a partial download removed, the cursor a bar hid shown again, a note of the
// job that goes on without it), then it ends the way shells report a signal (128 + its number).
const pending = new Set<() => void>();
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/** Runs `undo` if the run is interrupted before the answered function is called (which forgets it). */
export function onInterrupt(undo: () => void): () => void {
  pending.add(undo);
  return () => pending.delete(undo);
}

/** Installs the handlers, once, at start. */
export function handleInterrupts(): void {
  for (const [signal, number] of Object.entries(SIGNALS))
    process.once(signal, () => {
      for (const undo of [...pending].reverse())
        try {
          undo();
        } catch {
          // the rest still runs: this is the way out
        }
      process.exit(128 + number);
    });
}
