// Configuration comes only from environment variables. Each service declares one
// TypeBox schema; it is parsed once at start and a missing or bad variable stops
// the service with one line naming it.
import { type Static, type TObject, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { LOG_LEVELS } from "./log.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Fields several services share, so every schema spells them the same way. */
export const Port = (defaultPort: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort, description: "HTTP port" });
/** METRICS_PORT: where GET /metrics answers (the runner's second listener), never the public PORT. */
export const MetricsPort = (defaultPort: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort, description: "Prometheus /metrics port" });
export const LogLevel = Type.Union(
  LOG_LEVELS.map((level) => Type.Literal(level)),
  { default: "info", description: "log level" },
);
export const Url = (protocols: string[], defaultUrl: string, description: string) =>
  Type.String({ pattern: `^(${protocols.join("|")})://\\S+$`, default: defaultUrl, description });
/** Environment booleans: accept the usual spellings, reject anything else. */
export const Flag = (defaultValue: boolean, description: string) =>
  Type.Boolean({ default: defaultValue, description });
export const MongoUrl = Url(["mongodb", "mongodb\\+srv"], "mongodb://127.0.0.1:27017/m3dio", "a mongodb:// URL");
export const AmqpUrl = Url(["amqp", "amqps"], "amqp://guest:guest@127.0.0.1:5672", "an amqp:// URL");
export const MysqlUrl = Url(["mysql"], "mysql://root@127.0.0.1:3306/m3dio", "a mysql:// URL");
export const PublicUrl = Url(["http", "https"], "http://localhost:8080", "the gateway's public http(s):// address");
export const MaxUploadBytes = Type.Integer({
  minimum: 1,
  default: 2 * 1024 ** 3,
  description: "largest video accepted",
});
/** USER_STORAGE_BYTES (gateway and converter): the bytes of videos and MP3s one user may store. */
export const UserStorageBytes = Type.Integer({
  minimum: 1,
  default: 5 * 1024 ** 3,
  description: "bytes of videos and MP3s one user may store",
});

/**
 * Checks beyond what a schema can say (a list whose entries must each parse, say):
 * `checked(schema, parse)` marks a field whose value `parse` must accept; its error
 * message (which should not repeat the variable's name) becomes the config error.
 */
const checks = new WeakMap<TSchema, (value: never) => unknown>();
export function checked<T extends TSchema>(schema: T, check: (value: Static<T>) => unknown): T {
  checks.set(schema, check as (value: never) => unknown);
  return schema;
}

const TRUE = new Set(["true", "1", "yes", "on"]);
const FALSE = new Set(["false", "0", "no", "off", ""]);

/** Parse `env` against `schema`; throws ConfigError naming the first bad variable. */
export function parseConfig<S extends TObject>(schema: S, env: Record<string, string | undefined>): Static<S> {
  const raw: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema.properties) as [string, TSchema][]) {
    const value = env[name];
    // An empty value (`KEY=` in an env file) means "not set": the default applies.
    if (value === undefined || value === "") continue;
    raw[name] = coerce(name, field, value);
  }
  const withDefaults = Value.Default(schema, raw) as Record<string, unknown>;
  const firstError = Value.Errors(schema, withDefaults).First();
  if (firstError) {
    const name = firstError.path.split("/")[1] || firstError.path;
    const got = withDefaults[name];
    const shown = got === undefined ? "it is not set" : `got ${JSON.stringify(secretSafe(name, got))}`;
    throw new ConfigError(`config: ${name} ${describe(schema.properties[name])}; ${shown}`);
  }
  for (const [name, field] of Object.entries(schema.properties) as [string, TSchema][]) {
    const check = checks.get(field);
    try {
      check?.(withDefaults[name] as never);
    } catch (error) {
      throw new ConfigError(`config: ${name} ${(error as Error).message}`);
    }
  }
  return withDefaults as Static<S>;
}

/** Parse once at start; on failure print one line and stop the process. */
export function loadConfig<S extends TObject>(schema: S, env = process.env): Static<S> {
  try {
    return parseConfig(schema, env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${JSON.stringify({ level: "fatal", msg: error.message })}\n`);
    process.exit(78); // EX_CONFIG
  }
}

function coerce(name: string, field: TSchema | undefined, value: string): unknown {
  if (!field) return value;
  if (field.type === "integer" || field.type === "number") {
    const number = Number(value.trim());
    return value.trim() === "" || Number.isNaN(number) ? value : number;
  }
  if (field.type === "boolean") {
    const lowered = value.trim().toLowerCase();
    if (TRUE.has(lowered)) return true;
    if (FALSE.has(lowered)) return false;
    throw new ConfigError(`config: ${name} must be true or false; got ${JSON.stringify(value)}`);
  }
  return value;
}

function describe(field: TSchema | undefined): string {
  if (!field) return "is not allowed";
  if (field.anyOf) return `must be one of ${field.anyOf.map((option: TSchema) => option.const).join(", ")}`;
  if (field.type === "integer") {
    const range =
      field.minimum !== undefined
        ? ` from ${field.minimum}${field.maximum !== undefined ? ` to ${field.maximum}` : ""}`
        : "";
    return `must be a whole number${range}`;
  }
  if (field.type === "number") return "must be a number";
  if (field.type === "boolean") return "must be true or false";
  if (field.pattern) return `must match ${field.description ?? "the expected form"} (${field.pattern})`;
  if (field.minLength)
    return field.minLength > 1 ? `must be at least ${field.minLength} characters` : "must not be empty";
  return `must be ${field.description ?? "a string"}`;
}

/** Never print a password or key from a URL or secret variable into a log line. */
function secretSafe(name: string, value: unknown): unknown {
  if (/KEY|SECRET|PASSWORD|TOKEN/.test(name)) return "[redacted]";
  if (typeof value === "string") return value.replace(/\/\/([^:@/]+):[^@/]+@/, "//$1:***@");
  return value;
}

/**
 * GATEWAY_SECRET (auth and gateway): the gateway sends it with every request it forwards
 * to auth, and auth believes the client address the gateway names only beside it.
 */
export const GatewaySecret = Type.Optional(
  Type.String({
    minLength: 16,
    description: "a shared secret of at least 16 characters",
  }),
);

/**
 * LINK_SIGNING_KEY (gateway and notifier): the HMAC key of signed audio links
 * (lib/signed-links.ts); both must hold the same one. Unset: a key per process, with a warning.
 */
export const LinkSigningKey = Type.Optional(
  Type.String({
    minLength: 32,
    description: "a secret of at least 32 characters",
  }),
);
