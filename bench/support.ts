// Helpers every benchmark uses: print a figure, and measure latency percentiles
// of an async operation driven by N concurrent loops for a fixed time.
export function report(bench: string, metric: string, value: number, unit: string, goal?: string) {
  console.log(JSON.stringify({ bench, metric, value: Math.round(value * 100) / 100, unit, goal }));
}

export async function drive(concurrency: number, durationMs: number, operation: () => Promise<void>) {
  const latencies: number[] = [];
  const deadline = performance.now() + durationMs;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const start = performance.now();
        try {
          await operation();
          latencies.push(performance.now() - start);
        } catch {
          errors++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { count: latencies.length, errors, perSecond: latencies.length / (durationMs / 1000), p50: at(0.5), p99: at(0.99) };
}
