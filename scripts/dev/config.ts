// `bun run dev`'s own settings. One PORT would put all four services on one port (four
// listeners, each request answered by whichever got it), so every service has a port
// variable of its own here, passed to it as its PORT and METRICS_PORT. Parsed once at
// start like a service's config; a bad value stops dev with one line naming it (78).
import { type Static, Type } from "@sinclair/typebox";
import { AmqpUrl, ConfigError, LogLevel, MysqlUrl, parseConfig } from "../../lib/config.ts";

export const SERVICES = ["auth", "gateway", "converter", "notifier"] as const;
export type DevService = (typeof SERVICES)[number];

/** 0 ("any free port") is no use in dev: the gateway's AUTH_URL must name auth's port. */
const DevPort = (defaultPort: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 65535, default: defaultPort, description });

export const DevConfig = Type.Object({
  AUTH_PORT: DevPort(3001, "auth's PORT (the gateway's AUTH_URL follows it)"),
  GATEWAY_PORT: DevPort(8080, "the gateway's PORT (PUBLIC_URL follows it unless set)"),
  CONVERTER_PORT: DevPort(3002, "the converter's PORT (health)"),
  NOTIFIER_PORT: DevPort(3003, "the notifier's PORT (health)"),
  AUTH_METRICS_PORT: DevPort(9101, "auth's METRICS_PORT"),
  GATEWAY_METRICS_PORT: DevPort(9102, "the gateway's METRICS_PORT"),
  CONVERTER_METRICS_PORT: DevPort(9103, "the converter's METRICS_PORT"),
  NOTIFIER_METRICS_PORT: DevPort(9104, "the notifier's METRICS_PORT"),
  DEV_DIR: Type.String({ minLength: 1, default: ".dev", description: "a folder for dev's generated secrets" }),
  MYSQL_URL: MysqlUrl,
  AMQP_URL: AmqpUrl,
  // No default: dev must know whether it was set (else it looks for a MongoDB itself).
  MONGODB_URL: Type.Optional(
    Type.String({ pattern: "^(mongodb|mongodb\\+srv)://\\S+$", description: "a mongodb:// URL" }),
  ),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: "^https?://\\S+$", description: "an http(s):// URL" })),
  LOG_LEVEL: LogLevel,
});
export type DevConfig = Static<typeof DevConfig>;

export interface ServicePorts {
  port: number;
  metricsPort: number;
}

/** Each service's PORT and METRICS_PORT from the dev variables. */
export function servicePorts(config: DevConfig): Record<DevService, ServicePorts> {
  return {
    auth: { port: config.AUTH_PORT, metricsPort: config.AUTH_METRICS_PORT },
    gateway: { port: config.GATEWAY_PORT, metricsPort: config.GATEWAY_METRICS_PORT },
    converter: { port: config.CONVERTER_PORT, metricsPort: config.CONVERTER_METRICS_PORT },
    notifier: { port: config.NOTIFIER_PORT, metricsPort: config.NOTIFIER_METRICS_PORT },
  };
}

/** parseConfig, then: no two port variables name the same port. Throws ConfigError. */
export function parseDevConfig(env: Record<string, string | undefined>): DevConfig {
  const config = parseConfig(DevConfig, env);
  const seen = new Map<number, string>();
  for (const name of Object.keys(DevConfig.properties).filter((key) => key.endsWith("_PORT"))) {
    const port = config[name as keyof DevConfig] as number;
    const other = seen.get(port);
    if (other)
      throw new ConfigError(`config: ${name} is ${port}, and so is ${other}; each service needs ports of its own`);
    seen.set(port, name);
  }
  return config;
}

/** Parse once at start; on failure print one line (event dev.config_invalid) and stop (78, EX_CONFIG). */
export function loadDevConfig(env = process.env): DevConfig {
  try {
    return parseDevConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(
      `${JSON.stringify({ level: "fatal", service: "dev", event: "dev.config_invalid", msg: error.message })}\n`,
    );
    process.exit(78);
  }
}

/** Set in the environment (an empty value, `KEY=` in .env, counts as unset, as for the services). */
export function isSet(env: Record<string, string | undefined>, name: string): boolean {
  return (env[name] ?? "") !== "";
}
