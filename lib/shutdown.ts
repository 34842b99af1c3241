// Graceful stop of a service's HTTP server: stop taking connections, let the requests
// in flight finish (bounded), then close whatever connections remain. Bun's
// `server.stop()` alone is not enough: now and then it never resolves although no request
// is in flight (`pendingRequests` 0; seen on the gateway in the MongoDB fault test, about
// one run in fifteen), and the process would never exit by itself.
import type { Logger } from "./log.ts";

/** What this needs of an Elysia app (its Bun server, and its own stop). */
export interface Stoppable {
  server: { stop(closeActiveConnections?: boolean): Promise<unknown>; readonly pendingRequests: number } | null;
  stop(closeActiveConnections?: boolean): Promise<unknown>;
}

/** Stops `app`'s server: requests in flight get up to `graceMs` to finish, then every connection is closed. */
export async function stopServing(
  app: Stoppable,
  { graceMs = 20_000, log }: { graceMs?: number; log?: Logger } = {},
): Promise<void> {
  const server = app.server;
  if (!server) return;
  const closing = server.stop(false).catch(() => {}); // no new connections; answers in progress go on
  const deadline = Date.now() + graceMs;
  while (server.pendingRequests > 0 && Date.now() < deadline) await Bun.sleep(25);
  if (server.pendingRequests > 0)
    log?.warn(
      { pending: server.pendingRequests, graceMs },
      "requests still in flight after the grace period; closing them",
    );
  await Promise.race([closing, Bun.sleep(50)]);
  await app.stop(true); // what is left holds no request (or ran out of time)
}
