// Prometheus metrics: one registry per process with the default process metrics,
// HTTP request counts and durations by route and status, and GET /metrics.
import { Elysia } from "elysia";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

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
    .onAfterResponse({ as: "global" }, ({ request, route, set, responseValue }) => {
      const start = started.get(request);
      if (start === undefined) return;
      const status = responseValue instanceof Response ? responseValue.status : Number(set.status ?? 200);
      const labels = { method: request.method, route: route || "unmatched", status: String(status) };
      requests.inc(labels);
      durations.observe(labels, (performance.now() - start) / 1000);
    })
    .get(
      "/metrics",
      async () => new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } }),
      { detail: { tags: ["health"], summary: "Prometheus metrics" } },
    );

  return { registry, plugin };
}
