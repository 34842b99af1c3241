// The webhook workers' naps (notifier/naps.ts): a wake ends them, and one that ends on its
// own is forgotten, so an idle notifier holds no more sleepers than it has workers.
import { describe, expect, test } from "bun:test";
import { naps } from "../notifier/naps.ts";

describe("naps", () => {
  test("a nap that ends on its own leaves no sleeper behind, however many there were", async () => {
    const sleep = naps();
    for (let round = 0; round < 50; round++) await sleep.nap(0);
    expect(sleep.sleeping).toBe(0);
    sleep.wake(); // nothing to wake: harmless
    expect(sleep.sleeping).toBe(0);
  });

  test("a wake ends every nap under way at once, and they are forgotten", async () => {
    const sleep = naps();
    const napping = [sleep.nap(60_000), sleep.nap(60_000), sleep.nap(60_000)];
    expect(sleep.sleeping).toBe(3);
    sleep.wake();
    await Promise.all(napping); // an hour's naps: resolved only by the wake
    expect(sleep.sleeping).toBe(0);
  });
});
