// Prometheus metrics: one registry per process with the default process metrics and
// HTTP request counts and durations by route and the status actually answered.
// `plugin` counts the requests of the app that uses it; `app` serves GET /metrics and
// is listened on apart, on METRICS_PORT (lib/runner.ts), never on the public port.
import { Elysia, StatusMap } from "elysia";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

/** What onAfterResponse is given, as far as the status goes. */
interface Answered {
  set: { status?: number | string };
  responseValue?: unknown;
  error?: unknown;
}

/**
 * The status the client got. An error's answer (lib/problem.ts) is not the response value,
 * but `problems` sets `set.status` to it; a Response returned by a handler carries its own
 * status; anything else (a value, `status(201, ...)`) is answered with `set.status`.
 */
export function answeredStatus({ set, responseValue, error }: Answered): number {
  if (!error && responseValue instanceof Response) return responseValue.status;
  const status = set.status ?? 200;
  return typeof status === "number" ? status : (StatusMap[status as keyof typeof StatusMap] ?? 500);
}

export function createMetrics(service: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests answered, by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request durations, by method, route and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const started = new WeakMap<Request, number>();

  const plugin = new Elysia({ name: "metrics" })
    .onRequest(({ request }) => {
      started.set(request, performance.now());
    })
    .onAfterResponse({ as: "global" }, (context) => {
      const { request, route } = context;
      // No route: unknown paths (and answers given before routing) share one label, so a scan cannot mint series.
      const labels = { method: request.method, route: route || "unmatched", status: String(answeredStatus(context)) };
      requests.inc(labels);
      const start = started.get(request);
      if (start !== undefined) durations.observe(labels, (performance.now() - start) / 1000);
    });

  /** GET /metrics alone: the runner listens on METRICS_PORT with it. */
  const app = new Elysia({ name: `${service}.metrics` }).get(
    "/metrics",
    async () => new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } }),
  );

  return { registry, plugin, app };
}
