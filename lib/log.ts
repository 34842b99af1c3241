// One JSON line per event on stdout, always with the service name; pino is the
// well-kept choice for that in Node and Bun alike.
import pino from "pino";

export type Logger = pino.Logger;
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `destination` is for tests that read the lines; services log to stdout. */
export function createLogger(service: string, level: LogLevel = "info", destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service },
    messageKey: "msg",
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
