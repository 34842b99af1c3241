// Liveness says the process answers; readiness says every store and broker it
// needs answers too, so an orchestrator only routes work to a usable replica.
import { Elysia, t } from "elysia";

export type ReadinessChecks = Record<string, () => Promise<unknown>>;

/**
 * Whether a service's `start()` has finished: one of its readiness checks. A service starts
 * without its stores (lib/runner.ts retries `start()` until they answer), so until then it
 * is live but not ready, and the check says what the last try met.
 */
export function startupCheck() {
  let started = false;
  let waiting = "starting";
  return {
    check: async () => {
      if (!started) throw new Error(waiting);
    },
    /** Runs one try of the start; a failure is what readiness says until the next try. */
    async run(start: () => Promise<void>): Promise<void> {
      try {
        await start();
        started = true;
      } catch (error) {
        waiting = `starting: ${error instanceof Error ? error.message : String(error)}`;
        throw error;
      }
    },
  };
}

const CHECK_TIMEOUT_MS = 2000;

export const Readiness = t.Object({
  status: t.Union([t.Literal("ready"), t.Literal("unavailable")]),
  checks: t.Record(t.String(), t.String({ description: "'up' or why not" })),
  tools: t.Optional(
    t.Record(
      t.String(),
      t.String({ description: "a program's version, or why it is not used; never affects readiness" }),
    ),
  ),
});

/** Programs a service runs, each with its version or why it is not used (the converter's yt-dlp). */
export type ToolReport = () => Promise<Record<string, string>>;

async function runCheck(check: () => Promise<unknown>): Promise<string> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), timeout]);
    return "up";
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
  }
}

/** `/health/live` and `/health/ready`; `tools` adds what programs are in use to the readiness answer, for operators. */
export const health = (checks: ReadinessChecks, tools?: ToolReport) =>
  new Elysia({ name: "health" })
    .get("/health/live", () => ({ status: "live" as const }), {
      detail: { tags: ["health"], summary: "The process answers" },
      response: t.Object({ status: t.Literal("live") }),
    })
    .get(
      "/health/ready",
      async ({ status }) => {
        const names = Object.keys(checks);
        const results = await Promise.all(names.map((name) => runCheck(checks[name]!)));
        const report = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
        const ready = results.every((result) => result === "up");
        return status(ready ? 200 : 503, {
          status: ready ? ("ready" as const) : ("unavailable" as const),
          checks: report,
          ...(tools ? { tools: await tools() } : {}),
        });
      },
      {
        detail: { tags: ["health"], summary: "Every store and broker this service needs answers" },
        response: { 200: Readiness, 503: Readiness },
      },
    );
