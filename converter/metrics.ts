// The converter's Prometheus metrics, beside the HTTP and process ones every service has.
import { Counter, Histogram } from "prom-client";
import { createMetrics } from "../lib/metrics.ts";

export function converterMetrics() {
  const metrics = createMetrics("converter");
  const registers = [metrics.registry];
  return {
    plugin: metrics.plugin,
    /** GET /metrics, on METRICS_PORT (lib/runner.ts). */
    app: metrics.app,
    outcomes: new Counter({
      name: "converter_jobs_total",
      help: "jobs handled, by outcome",
      labelNames: ["outcome"] as const,
      registers,
    }),
    seconds: new Histogram({
      name: "converter_conversion_seconds",
      help: "time from message to MP3 stored",
      buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    bytesIn: new Counter({ name: "converter_video_bytes_total", help: "video bytes read", registers }),
    bytesOut: new Counter({ name: "converter_mp3_bytes_total", help: "MP3 bytes written", registers }),
    bytesLinked: new Counter({
      name: "converter_link_bytes_total",
      help: "video bytes downloaded from links",
      registers,
    }),
  };
}

export type ConverterMetrics = ReturnType<typeof converterMetrics>;
