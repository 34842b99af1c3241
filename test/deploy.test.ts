// The deployment files, checked without Docker or a cluster: the Dockerfile,
// compose.yaml (against the Compose Specification's JSON schema), the k3d
// kustomization as `kubectl kustomize` renders it (against the Kubernetes schemas of
// kubernetes-models), and their agreement with each service's own config schema,
// ports and health routes. Needs kubectl (its built-in kustomize) on the PATH.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TObject, TSchema } from "@sinclair/typebox";
import Ajv from "ajv";
import { Elysia } from "elysia";
import { AuthConfig, createAuth, loadSigningKey } from "../auth.ts";
import { parseConfig } from "../lib/config.ts";
import { health } from "../lib/health.ts";
import { createLogger } from "../lib/log.ts";

type Doc = Record<string, any>;

const ROOT = join(import.meta.dir, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const SERVICES = ["auth", "gateway", "converter", "notifier"] as const;
type ServiceName = (typeof SERVICES)[number];
/** Services whose file exists; the others are still being written. */
const PRESENT = SERVICES.filter((name) => existsSync(join(ROOT, `${name}.ts`)));
const PROBE_PATHS = { readiness: "/health/ready", liveness: "/health/live" };

// ── service config schemas ──────────────────────────────────────────────────
const schemaCache = new Map<string, Promise<TObject>>();
/** `<Name>Config` exported by `<name>.ts`; importing does not start the service. */
function configSchema(name: ServiceName): Promise<TObject> {
  const exportName = `${name[0]!.toUpperCase()}${name.slice(1)}Config`;
  let schema = schemaCache.get(name);
  if (!schema) {
    schema = import(join(ROOT, `${name}.ts`)).then((module: Record<string, unknown>) => {
      const value = module[exportName] as TObject | undefined;
      if (!value || typeof value !== "object" || !value.properties) {
        throw new Error(`${name}.ts does not export ${exportName}, the TypeBox schema of its environment variables`);
      }
      return value;
    });
    schemaCache.set(name, schema);
  }
  return schema;
}
const propertiesOf = (schema: TObject) => schema.properties as Record<string, TSchema>;
/** Variables the service cannot start without: required and no default. */
const requiredWithoutDefault = (schema: TObject) =>
  (schema.required ?? []).filter((name) => propertiesOf(schema)[name]?.default === undefined);
const defaultPort = (schema: TObject) => Number(propertiesOf(schema).PORT?.default);

// ── Dockerfile ──────────────────────────────────────────────────────────────
interface Stage {
  name: string;
  from: string;
  instructions: string[];
}
function dockerStages(): { args: Record<string, string>; stages: Stage[] } {
  const lines = read("Dockerfile")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
    if (from) stages.push({ from: from[1]!.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? ""), name: from[2] ?? "", instructions: [] });
    else if (stages.length === 0 && /^ARG\s/i.test(line)) {
      const [name, value] = line.replace(/^ARG\s+/i, "").split("=");
      args[name!] = value ?? "";
    } else stages.at(-1)?.instructions.push(line);
  }
  return { args, stages };
}
/** The stage and every stage it is built FROM, nearest first. */
function stageChain(stages: Stage[], name: string): Stage[] {
  const chain: Stage[] = [];
  for (let stage = stages.find((s) => s.name === name); stage; stage = stages.find((s) => s.name === stage!.from)) chain.push(stage);
  return chain;
}
/** Whether an ignore file (.dockerignore, .gitignore) leaves `path` out; the last matching line wins. */
function ignoredBy(ignoreFile: string, path: string): boolean {
  let ignored = false;
  for (const raw of read(ignoreFile).split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const negated = line.startsWith("!");
    let pattern = (negated ? line.slice(1) : line).replace(/\/$/, "");
    // .gitignore: a pattern without a slash matches at any depth
    if (ignoreFile === ".gitignore" && !pattern.includes("/")) pattern = `**/${pattern}`;
    pattern = pattern.replace(/^\//, "");
    const candidates = path.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    if (candidates.some((candidate) => candidate === pattern || new Bun.Glob(pattern).match(candidate))) ignored = !negated;
  }
  return ignored;
}
const dockerignored = (path: string) => ignoredBy(".dockerignore", path);
const gitignored = (path: string) => ignoredBy(".gitignore", path);

// ── compose ─────────────────────────────────────────────────────────────────
const composeText = read("compose.yaml");
const compose = Bun.YAML.parse(composeText) as Doc;
const services = compose.services as Record<string, Doc>;
const APP_IMAGE = services.auth!.image as string;

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $$. */
function interpolate(value: string, env: Record<string, string> = {}): string {
  return value.replace(/\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}/g, (whole, name: string | undefined, op: string | undefined, fallback: string | undefined) => {
    if (whole === "$$") return "$";
    const set = env[name!];
    if (op === ":-") return set ? set : (fallback ?? "");
    if (op === "-") return set ?? fallback ?? "";
    return set ?? "";
  });
}
const environment = (service: Doc): Record<string, string | null> => {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((entry: string) => [entry.split("=")[0], entry.includes("=") ? entry.slice(entry.indexOf("=") + 1) : null]));
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? null : String(value)]));
};
/** Ports a compose service listens on inside the network: published container ports and its PORT. */
function listeningPorts(service: Doc): number[] {
  const ports = (service.ports ?? []).map((port: string) => Number(interpolate(String(port)).split(":").at(-1)));
  const own = environment(service).PORT;
  return own ? [...ports, Number(own)] : ports;
}
/** URLs among a service's variables (after interpolation), as URL objects. */
function urlsIn(env: Record<string, string | null>, vars: Record<string, string> = {}): [string, URL][] {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => typeof entry[1] === "string" && /^[a-z+]+:\/\//.test(entry[1]))
    .map(([key, value]) => [key, new URL(interpolate(value, vars))]);
}
const defaultPortOf = (url: URL) => Number(url.port || { "http:": 80, "https:": 443, "amqp:": 5672, "mysql:": 3306, "mongodb:": 27017 }[url.protocol]);

// ── kustomize ───────────────────────────────────────────────────────────────
let workDir = "";
let base: Doc[] = [];
let keda: Doc[] = [];

function kustomize(args: string[]): Doc[] {
  const result = Bun.spawnSync(["kubectl", "kustomize", ...args], { stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`kubectl kustomize ${args.join(" ")} failed: ${result.stderr.toString()}`);
  const parsed = Bun.YAML.parse(result.stdout.toString()) as Doc | Doc[];
  const docs = (Array.isArray(parsed) ? parsed : [parsed]).filter(Boolean);
  // kubectl wraps long base64 values over lines, which the API server's decoder skips
  for (const doc of docs) {
    if (doc.kind === "Secret") for (const key of Object.keys(doc.data ?? {})) doc.data[key] = String(doc.data[key]).replace(/\s+/g, "");
  }
  return docs;
}

beforeAll(() => {
  if (!Bun.which("kubectl")) {
    throw new Error("kubectl is not on the PATH: these tests render k3d/ with `kubectl kustomize` (kubectl ≥ 1.27; Debian/CI: apt package kubectl)");
  }
  // Render a copy, with secrets.env from the committed example: the real one is never committed.
  workDir = mkdtempSync(join(tmpdir(), "m3dio-deploy-"));
  cpSync(join(ROOT, "k3d"), join(workDir, "k3d"), { recursive: true, filter: (source) => !source.endsWith("/secrets.env") });
  cpSync(join(ROOT, "k3d/secrets.env.example"), join(workDir, "k3d/secrets.env"));
  base = kustomize([join(workDir, "k3d")]);
  keda = kustomize(["--load-restrictor", "LoadRestrictionsNone", join(workDir, "k3d/overlays/keda")]);
});
afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const find = (docs: Doc[], kind: string, name: string) => docs.find((doc) => doc.kind === kind && doc.metadata?.name === name);
const mustFind = (docs: Doc[], kind: string, name: string): Doc => {
  const doc = find(docs, kind, name);
  if (!doc) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return doc;
};
const podSpec = (workload: Doc): Doc => workload.spec.template.spec;
const mainContainer = (workload: Doc): Doc => podSpec(workload).containers[0];
const configMap = (docs: Doc[]) => docs.find((doc) => doc.kind === "ConfigMap" && doc.metadata.name.startsWith("m3dio-config"))!;
const secret = (docs: Doc[]) => docs.find((doc) => doc.kind === "Secret" && doc.metadata.name.startsWith("m3dio-secrets"))!;
const secretValues = (docs: Doc[]): Record<string, string> =>
  Object.fromEntries(Object.entries(secret(docs).data as Record<string, string>).map(([key, value]) => [key, Buffer.from(value, "base64").toString("utf8")]));
/** What a container's env resolves to, from literal values, the ConfigMap and the Secret. */
function resolvedEnv(docs: Doc[], container: Doc): Record<string, string | undefined> {
  const config = configMap(docs).data as Record<string, string>;
  const secrets = secretValues(docs);
  return Object.fromEntries(
    (container.env ?? []).map((variable: Doc) => {
      if (variable.value !== undefined) return [variable.name, String(variable.value)];
      if (variable.valueFrom?.configMapKeyRef) return [variable.name, config[variable.valueFrom.configMapKeyRef.key]];
      if (variable.valueFrom?.secretKeyRef) return [variable.name, secrets[variable.valueFrom.secretKeyRef.key]];
      return [variable.name, undefined];
    }),
  );
}
/** Kubernetes resource quantity → bytes. */
function bytes(quantity: string): number {
  const match = String(quantity).match(/^(\d+(?:\.\d+)?)([KMGT]i?)?$/);
  if (!match) throw new Error(`not a quantity: ${quantity}`);
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(match[1]) * (match[2] ? units[match[2]]! : 1);
}
function envFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#") && line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}
/** SHUTDOWN_GRACE_MS as deployed: k3d's config.env, or the converter's default. */
async function converterGraceMs(): Promise<number> {
  const configured = Number(envFile(read("k3d/config.env")).SHUTDOWN_GRACE_MS);
  const fallback = PRESENT.includes("converter") ? Number(propertiesOf(await configSchema("converter")).SHUTDOWN_GRACE_MS?.default ?? 0) : 0;
  return Math.max(configured || 0, fallback);
}

// ════════════════════════════════════════════════════════════════════════════
describe("Dockerfile", () => {
  const { args, stages } = dockerStages();

  test("every stage starts from the official Bun image at the version CI installs", () => {
    const ciVersion = read(".ci/run").match(/^BUN_VERSION=(\S+)/m)?.[1];
    const workflowVersion = read(".github/workflows/ci.yml").match(/BUN_VERSION:\s*(\S+)/)?.[1];
    expect(args.BUN_VERSION).toBe(ciVersion!);
    expect(workflowVersion).toBe(ciVersion!);
    const roots = stages.filter((stage) => !stages.some((other) => other.name === stage.from));
    expect(roots.map((stage) => stage.from)).toEqual([`oven/bun:${ciVersion}-slim`]);
  });

  test("the runtime image has ffmpeg, production dependencies from the lockfile, the code and migrations, and runs as uid 1000", () => {
    const chain = stageChain(stages, "runtime");
    expect(chain.map((stage) => stage.name)).toContain("base");
    const all = chain.flatMap((stage) => stage.instructions).join("\n");
    expect(all).toMatch(/apt-get install[^\n]*\bffmpeg\b/);
    const runtime = chain[0]!.instructions;
    expect(runtime).toContain("USER 1000:1000");
    const deps = stages.find((stage) => runtime.some((line) => line.startsWith(`COPY --from=${stage.name} `) && line.includes("node_modules")));
    expect(deps?.instructions.join("\n")).toMatch(/bun install --frozen-lockfile --production/);
    // the source copied in: nothing the services or the migrate job need may be filtered out
    for (const path of ["auth.ts", "package.json", "bun.lock", "lib/config.ts", "db/migrate.ts", "db/migrations/meta/_journal.json", ...PRESENT.map((name) => `${name}.ts`)]) {
      expect(dockerignored(path), `${path} is excluded by .dockerignore`).toBe(false);
    }
    const source = stages.find((stage) => runtime.some((line) => line.startsWith(`COPY --from=${stage.name} `) && !line.includes("node_modules")));
    const removed = source?.instructions.find((line) => line.startsWith("RUN rm "))?.split(/\s+/) ?? [];
    for (const needed of ["db", "lib", "package.json"]) expect(removed).not.toContain(needed);
    expect(chain[0]!.instructions.at(-1)).toMatch(/^CMD \["bun", "\w+\.ts"\]$/);
  });

  test(".dockerignore keeps dependencies, git, secrets and test artifacts out of the build context", () => {
    for (const path of ["node_modules", "node_modules/elysia/package.json", ".git", ".git/HEAD", ".env", ".env.local", "k3d/secrets.env", "test-artifacts/x.png"]) {
      expect(dockerignored(path), `${path} should be ignored`).toBe(true);
    }
  });

  test("the build stage has every dependency, the tests and ffmpeg, for compose's test profile", () => {
    const chain = stageChain(stages, "build");
    expect(chain.map((stage) => stage.name)).toContain("base");
    const build = chain[0]!.instructions.join("\n");
    expect(build).toMatch(/bun install --frozen-lockfile(?! --production)/);
    expect(build).toMatch(/COPY (--chown=\S+ )?\. \./);
    expect(build).toContain("/usr/local/bin/kubectl"); // this file's k3d checks run in there too
    // what the suite reads must reach the build context
    for (const path of ["test/auth.test.ts", "test/support/preload.ts", ".ci/run", ".github/workflows/ci.yml", "k3d/kustomization.yaml", "k3d/secrets.env.example", ".gitignore", "scripts/k3d-up.sh"]) {
      expect(dockerignored(path), `${path} is excluded by .dockerignore`).toBe(false);
    }
  });
});

// ════════════════════════════════════════════════════════════════════════════
describe("compose.yaml", () => {
  test("validates against the Compose Specification's JSON schema", async () => {
    const schemaPath = join(dirname(require.resolve("dclint/package.json")), "schemas/compose.schema.json");
    const { $schema: _draft, ...schema } = (await Bun.file(schemaPath).json()) as Doc;
    const validate = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true }).compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
    // and the schema does catch a misspelt key, so the pass above means something
    expect(validate({ ...compose, services: { ...services, auth: { ...services.auth, helthcheck: {} } } })).toBe(false);
  });

  test("the services and the migrate job run one image built from the Dockerfile's runtime stage", () => {
    const stageNames = dockerStages().stages.map((stage) => stage.name);
    for (const name of [...SERVICES, "migrate"]) {
      const service = services[name]!;
      expect(service.image, name).toBe(APP_IMAGE);
      expect(service.build?.target, name).toBe("runtime");
      expect(stageNames).toContain(service.build.target);
    }
    for (const name of PRESENT) expect(services[name]!.command).toEqual(["bun", `${name}.ts`]);
    expect(services.migrate!.command).toEqual(["bun", "db/migrate.ts"]);
    expect(existsSync(join(ROOT, "db/migrate.ts"))).toBe(true);
  });

  for (const name of PRESENT) {
    test(`${name}: gets exactly the variables ${name}.ts reads, every required one, and its own PORT`, async () => {
      const schema = await configSchema(name);
      const env = environment(services[name]!);
      const known = Object.keys(propertiesOf(schema));
      expect(Object.keys(env).filter((key) => !known.includes(key))).toEqual([]);
      for (const required of requiredWithoutDefault(schema)) expect(typeof env[required], `${required} is required`).toBe("string");
      expect(Number(env.PORT)).toBe(defaultPort(schema));
      // and the values compose sets are ones the service accepts
      const set = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== null).map(([key, value]) => [key, interpolate(value)]));
      expect(() => parseConfig(schema, set)).not.toThrow();
    });
  }

  test("services reach each other by service name, at a port that service listens on", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [variable, url] of urlsIn(environment(service))) {
        const target = services[url.hostname];
        expect(target, `${name} ${variable} → ${url.hostname}`).toBeDefined();
        expect(listeningPorts(target!), `${name} ${variable}`).toContain(defaultPortOf(url));
      }
    }
  });

  test("every service starts after what it talks to is healthy, and auth after the migrations", () => {
    for (const [name, service] of Object.entries(services)) {
      const dependsOn = (service.depends_on ?? {}) as Record<string, { condition: string }>;
      for (const [, url] of urlsIn(environment(service))) {
        expect(dependsOn[url.hostname]?.condition, `${name} → ${url.hostname}`).toBe("service_healthy");
      }
      for (const [dependency, { condition }] of Object.entries(dependsOn)) {
        if (condition === "service_healthy") expect(services[dependency]!.healthcheck?.test, `${dependency} has no healthcheck`).toBeDefined();
      }
    }
    expect(services.auth!.depends_on.migrate.condition).toBe("service_completed_successfully");
    expect(services.migrate!.depends_on.mysql.condition).toBe("service_healthy");
    expect(environment(services.auth!).MIGRATE_ON_START).toBe("false");
  });

  test("every long-running service has a healthcheck; the Bun services ask their own /health/ready", () => {
    for (const [name, service] of Object.entries(services)) {
      if (name === "migrate" || name === "test") continue;
      expect(service.healthcheck?.test, name).toBeDefined();
    }
    for (const name of SERVICES) {
      const check = services[name]!.healthcheck.test as string[];
      expect(check.slice(0, 3)).toEqual(["CMD", "bun", "-e"]);
      expect(check[3]).toContain(`http://127.0.0.1:${environment(services[name]!).PORT}${PROBE_PATHS.readiness}`);
    }
  });

  test("the Bun healthcheck command reports healthy on 200 and unhealthy on 503 or no answer", async () => {
    const scripts = SERVICES.map((name) => (services[name]!.healthcheck.test as string[])[3]!.replace(/127\.0\.0\.1:\d+/, "127.0.0.1:PORT"));
    expect(new Set(scripts).size).toBe(1);
    const ready = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (request) => new Response(null, { status: new URL(request.url).pathname === PROBE_PATHS.readiness ? 200 : 404 }) });
    const unready = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(null, { status: 503 }) });
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(null) });
    const closedPort = closed.port;
    closed.stop(true);
    const exitCode = (port: number | undefined) =>
      Bun.spawn([process.execPath, "-e", scripts[0]!.replace("PORT", String(port))], { stdout: "ignore", stderr: "ignore" }).exited;
    try {
      expect(await exitCode(ready.port)).toBe(0);
      expect(await exitCode(unready.port)).toBe(1);
      expect(await exitCode(closedPort)).toBe(1);
    } finally {
      ready.stop(true);
      unready.stop(true);
    }
  });

  test("two converters, each given longer than SHUTDOWN_GRACE_MS to finish on stop", async () => {
    expect(services.converter!.deploy.replicas).toBe(2);
    const grace = Number(String(services.converter!.stop_grace_period).replace(/s$/, ""));
    expect(grace).toBeGreaterThanOrEqual((await converterGraceMs()) / 1000 + 5);
  });

  test("the gateway is on localhost:8080; stores and the RabbitMQ UI are published on 127.0.0.1 only", () => {
    expect(services.gateway!.ports).toEqual([`${environment(services.gateway!).PORT}:8080`]);
    for (const store of ["mysql", "mongo", "rabbitmq"]) {
      for (const port of services[store]!.ports) expect(interpolate(port)).toMatch(/^127\.0\.0\.1:/);
    }
    expect(services.rabbitmq!.ports.map((port: string) => interpolate(port))).toContain("127.0.0.1:15672:15672");
    expect(services.rabbitmq!.image).toMatch(/-management$/);
  });

  test("the stores keep their data in named volumes", () => {
    const dataDirs: Record<string, string> = { mysql: "/var/lib/mysql", mongo: "/data/db", rabbitmq: "/var/lib/rabbitmq" };
    for (const [store, dir] of Object.entries(dataDirs)) {
      const volume = (services[store]!.volumes as string[]).find((mount) => mount.endsWith(`:${dir}`))?.split(":")[0];
      expect(volume, store).toBeDefined();
      expect(Object.keys(compose.volumes)).toContain(volume!);
    }
    expect(services.rabbitmq!.hostname).toBe("rabbitmq"); // a fixed node name finds its data again
  });

  test("no secret is committed: keys come only from .env, the MySQL password falls back to a dev value", () => {
    expect(environment(services.auth!).JWT_PRIVATE_KEY).toBeNull();
    expect(environment(services.notifier!).RESEND_API_KEY).toBeNull();
    expect(services.mysql!.environment.MYSQL_ROOT_PASSWORD).toMatch(/^\$\{MYSQL_ROOT_PASSWORD:-[^}]+\}$/);
    for (const path of [".env", "k3d/secrets.env"]) expect(gitignored(path), `${path} is not in .gitignore`).toBe(true);
    for (const path of [".env.example", "k3d/secrets.env.example", "compose.yaml"]) expect(gitignored(path), path).toBe(false);
  });

  test("auth's MYSQL_URL carries the root password MySQL is given, from .env or the dev default", () => {
    for (const vars of [{}, { MYSQL_ROOT_PASSWORD: "from-dot-env" }] as Record<string, string>[]) {
      const password = interpolate(services.mysql!.environment.MYSQL_ROOT_PASSWORD, vars);
      for (const name of ["auth", "migrate", "test"]) {
        const url = new URL(interpolate(environment(services[name]!).MYSQL_URL!, vars));
        expect([url.username, url.password, url.hostname], name).toEqual(["root", password, "mysql"]);
      }
    }
    expect(new URL(interpolate(environment(services.auth!).MYSQL_URL!)).pathname).toBe(`/${services.mysql!.environment.MYSQL_DATABASE}`);
  });

  test("the test profile runs the whole suite from the build stage against compose's MySQL, MongoDB and RabbitMQ", () => {
    const runner = services.test!;
    expect(runner.profiles).toEqual(["test"]);
    expect(runner.build.target).toBe("build");
    expect(runner.command).toEqual(["bun", "run", "test"]);
    const env = environment(runner);
    expect(new URL(interpolate(env.MYSQL_URL!)).hostname).toBe("mysql");
    expect(new URL(env.MONGODB_URL!).hostname).toBe("mongo");
    const amqp = new URL(env.AMQP_URL!);
    const api = new URL(env.RABBITMQ_API_URL!);
    expect([amqp.hostname, api.hostname, api.port]).toEqual(["rabbitmq", "rabbitmq", "15672"]);
    expect([api.username, api.password]).toEqual([amqp.username, amqp.password]);
    // every other service, and a plain `docker compose up`, leaves the test runner out
    for (const [name, service] of Object.entries(services)) if (name !== "test") expect(service.profiles, name).toBeUndefined();
  });
});

// ════════════════════════════════════════════════════════════════════════════
describe("k3d manifests", () => {
  const APP_WORKLOADS = [...SERVICES.map((name) => ["Deployment", name] as const), ["Job", "migrate"] as const];

  test("kubectl kustomize renders k3d and its keda overlay with every piece of the system", () => {
    const kinds = (docs: Doc[]) => docs.map((doc) => `${doc.kind}/${doc.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort();
    expect(kinds(base)).toEqual(
      [
        "Namespace/m3dio", "ConfigMap/m3dio-config", "Secret/m3dio-secrets",
        "StatefulSet/mysql", "StatefulSet/mongo", "StatefulSet/rabbitmq", "Service/mysql", "Service/mongo", "Service/rabbitmq",
        "Job/migrate", "Deployment/auth", "Service/auth", "Deployment/gateway", "Service/gateway",
        "Deployment/converter", "HorizontalPodAutoscaler/converter", "Deployment/notifier", "Ingress/gateway",
      ].sort(),
    );
    for (const doc of base) if (doc.kind !== "Namespace") expect(doc.metadata.namespace, `${doc.kind}/${doc.metadata.name}`).toBe("m3dio");
  });

  test("every rendered object validates against the Kubernetes schemas (kubernetes-models)", async () => {
    for (const doc of [...base, ...keda]) {
      const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
      const modulePath = group.endsWith("keda.sh") ? `@kubernetes-models/keda/${group}/${version}/${doc.kind}` : `kubernetes-models/${group ? `${group}/` : ""}${version}/${doc.kind}`;
      const Model = (await import(modulePath))[doc.kind] as new (data: Doc) => { validate(): void };
      expect(() => new Model(doc).validate(), `${doc.kind}/${doc.metadata.name}`).not.toThrow();
    }
  });

  test("no object has a field Kubernetes does not know (TypeScript's excess-property check on kubernetes-models' types)", () => {
    // `kubectl apply` rejects unknown fields (strict field validation); the JSON schemas above allow them.
    const dir = join(ROOT, "node_modules/.cache/m3dio-deploy-test");
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    const seen = new Set<string>();
    [...base, ...keda].forEach((doc, i) => {
      const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
      const modulePath = group.endsWith("keda.sh") ? `@kubernetes-models/keda/${group}/${version}/${doc.kind}` : `kubernetes-models/${group ? `${group}/` : ""}${version}/${doc.kind}`;
      const type = `I${doc.kind}${i}`;
      if (!seen.has(type)) lines.push(`import type { I${doc.kind} as ${type} } from "${modulePath}";`);
      seen.add(type);
      lines.push(`export const object${i}: ${type} = ${JSON.stringify(doc, null, 2)};`);
    });
    const typecheck = (name: string, source: string) => {
      const file = join(dir, name);
      writeFileSync(file, source);
      const tsc = Bun.spawnSync(
        [join(ROOT, "node_modules/.bin/tsc"), "--ignoreConfig", "--noEmit", "--strict", "--skipLibCheck", "--target", "esnext", "--module", "preserve", "--moduleResolution", "bundler", "--types", "", file],
        { cwd: dir, stdout: "pipe", stderr: "pipe" },
      );
      return { code: tsc.exitCode, errors: `${tsc.stdout.toString()}${tsc.stderr.toString()}`.split("\n").filter((line) => line.includes("error")) };
    };
    expect(typecheck("rendered.ts", `${lines.join("\n")}\n`)).toEqual({ code: 0, errors: [] });
    // the check does catch a misspelt field
    const misspelt = typecheck("control.ts", 'import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";\nexport const d: IDeployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { selector: {}, template: { spec: { containers: [{ name: "x", readinessprobe: {} }] } } } };\n');
    expect(misspelt.errors.join("\n")).toContain("readinessprobe");
  });

  test("every app container runs the image compose builds and k3d:up imports, never pulled", () => {
    expect(read("scripts/k3d-up.sh")).toContain(`IMAGE=${APP_IMAGE} `);
    for (const [kind, name] of APP_WORKLOADS) {
      const container = mainContainer(mustFind(base, kind, name));
      expect([container.image, container.imagePullPolicy], name).toEqual([APP_IMAGE, "IfNotPresent"]);
    }
  });

  for (const name of PRESENT) {
    test(`${name}: its env is what ${name}.ts reads, every required variable set, each from a key that exists`, async () => {
      const schema = await configSchema(name);
      const container = mainContainer(mustFind(base, "Deployment", name));
      const known = Object.keys(propertiesOf(schema));
      const names = (container.env as Doc[]).map((variable) => variable.name as string);
      expect(names.filter((key) => !known.includes(key))).toEqual([]);
      expect(container.envFrom).toBeUndefined(); // each service takes only its own keys
      const config = configMap(base).data as Record<string, string>;
      const secrets = secretValues(base);
      for (const variable of container.env as Doc[]) {
        const fromConfig = variable.valueFrom?.configMapKeyRef;
        const fromSecret = variable.valueFrom?.secretKeyRef;
        if (fromConfig) expect(Object.keys(config), `${variable.name} ← ConfigMap`).toContain(fromConfig.key);
        if (fromSecret && !fromSecret.optional) expect(Object.keys(secrets), `${variable.name} ← Secret`).toContain(fromSecret.key);
      }
      const env = resolvedEnv(base, container);
      for (const required of requiredWithoutDefault(schema)) expect(env[required], `${required} is required`).toBeDefined();
      const values = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
      expect(() => parseConfig(schema, values)).not.toThrow();
      expect(Number(env.PORT)).toBe(defaultPort(schema));
    });
  }

  test("container ports, probes (/health/ready, /health/live), Services and compose agree on each service's PORT", () => {
    for (const name of SERVICES) {
      const container = mainContainer(mustFind(base, "Deployment", name));
      const port = Number(resolvedEnv(base, container).PORT);
      expect(port, name).toBe(Number(environment(services[name]!).PORT));
      expect(container.ports.map((p: Doc) => p.containerPort)).toEqual([port]);
      expect([container.readinessProbe.httpGet.path, container.readinessProbe.httpGet.port]).toEqual([PROBE_PATHS.readiness, port]);
      expect([container.livenessProbe.httpGet.path, container.livenessProbe.httpGet.port]).toEqual([PROBE_PATHS.liveness, port]);
      expect(container.command).toEqual(services[name]!.command);
      const service = find(base, "Service", name);
      if (service) {
        expect(service.spec.selector).toEqual(mustFind(base, "Deployment", name).spec.selector.matchLabels);
        expect(service.spec.ports.map((p: Doc) => p.targetPort)).toEqual([port]);
      }
    }
  });

  test("gateway → auth and the Ingress → gateway use the ports the Services expose", () => {
    const authUrl = new URL((configMap(base).data as Record<string, string>).AUTH_URL!);
    const authService = mustFind(base, "Service", authUrl.hostname);
    expect(authService.spec.ports.map((p: Doc) => p.port)).toContain(defaultPortOf(authUrl));
    const ingress = mustFind(base, "Ingress", "gateway");
    expect(ingress.spec.ingressClassName).toBe("traefik");
    const [path] = ingress.spec.rules[0].http.paths;
    expect([path.path, path.pathType]).toEqual(["/", "Prefix"]);
    const backend = path.backend.service;
    expect(mustFind(base, "Service", backend.name).spec.ports.map((p: Doc) => p.port)).toContain(backend.port.number);
    expect(backend.name).toBe("gateway");
    // no Traefik middleware (a Buffering one would cap the 2 GiB uploads)
    expect(Object.keys(ingress.metadata.annotations ?? {}).filter((key) => key.includes("middlewares"))).toEqual([]);
    expect(read("k3d/traefik-config.yaml")).toContain("--entryPoints.web.transport.respondingTimeouts.readTimeout=0");
  });

  test("app pods are locked down: uid 1000 non-root, no privilege escalation, read-only root with a writable /tmp", () => {
    const { stages } = dockerStages();
    const imageUser = stageChain(stages, "runtime")[0]!.instructions.find((line) => line.startsWith("USER "))!.split(/\s+/)[1]!.split(":")[0];
    for (const [kind, name] of APP_WORKLOADS) {
      const workload = mustFind(base, kind, name);
      const pod = podSpec(workload);
      expect(pod.securityContext.runAsNonRoot, name).toBe(true);
      expect(String(pod.securityContext.runAsUser), name).toBe(imageUser!);
      expect(pod.securityContext.runAsUser).toBe(1000);
      for (const container of pod.containers as Doc[]) {
        expect(container.securityContext.allowPrivilegeEscalation, name).toBe(false);
        expect(container.securityContext.readOnlyRootFilesystem, name).toBe(true);
        const tmp = (container.volumeMounts as Doc[]).find((mount) => mount.mountPath === "/tmp");
        expect(pod.volumes.find((volume: Doc) => volume.name === tmp?.name)?.emptyDir, `${name} /tmp`).toBeDefined();
      }
    }
  });

  test("every container, stores included, has CPU and memory requests and limits", () => {
    for (const doc of base.filter((doc) => ["Deployment", "StatefulSet", "Job"].includes(doc.kind))) {
      for (const container of podSpec(doc).containers as Doc[]) {
        for (const kind of ["requests", "limits"]) {
          expect(Object.keys(container.resources?.[kind] ?? {}).sort(), `${doc.metadata.name} ${kind}`).toEqual(["cpu", "memory"]);
        }
        expect(bytes(container.resources.requests.memory)).toBeLessThanOrEqual(bytes(container.resources.limits.memory));
      }
    }
  });

  test("the converter has longer than SHUTDOWN_GRACE_MS to stop, and room in /tmp for the largest upload", async () => {
    const converter = mustFind(base, "Deployment", "converter");
    const env = resolvedEnv(base, mainContainer(converter));
    const graceMs = Math.max(Number(env.SHUTDOWN_GRACE_MS ?? 0), await converterGraceMs());
    expect(podSpec(converter).terminationGracePeriodSeconds).toBeGreaterThanOrEqual(graceMs / 1000 + 5);
    const tmp = podSpec(converter).volumes.find((volume: Doc) => volume.name === "tmp");
    expect(bytes(tmp.emptyDir.sizeLimit)).toBeGreaterThan(Number(env.MAX_UPLOAD_BYTES) * 2);
  });

  test("the converter's replicas belong to a CPU HorizontalPodAutoscaler", () => {
    const hpa = mustFind(base, "HorizontalPodAutoscaler", "converter");
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "converter" });
    expect(hpa.spec.metrics.map((metric: Doc) => metric.resource?.name)).toEqual(["cpu"]);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(1);
    expect(mustFind(base, "Deployment", "converter").spec.replicas).toBeUndefined();
  });

  test("the ConfigMap holds no secrets; the Secret is generated from an uncommitted secrets.env", () => {
    const config = configMap(base).data as Record<string, string>;
    expect(Object.keys(config).filter((key) => /KEY|PASSWORD|SECRET|TOKEN/.test(key))).toEqual([]);
    for (const [key, value] of Object.entries(config)) expect(value, key).not.toMatch(/\/\/[^/@\s]+:[^/@\s]+@/);
    const kustomization = Bun.YAML.parse(read("k3d/kustomization.yaml")) as Doc;
    expect(kustomization.secretGenerator).toEqual([{ name: "m3dio-secrets", envs: ["secrets.env"] }]);
    expect(kustomization.configMapGenerator).toEqual([{ name: "m3dio-config", envs: ["config.env"] }]);
    expect(gitignored("k3d/secrets.env")).toBe(true);
  });

  test("the stores are StatefulSets on persistent volumes, at the addresses the services are given", () => {
    for (const store of ["mysql", "mongo", "rabbitmq"]) {
      const set = mustFind(base, "StatefulSet", store);
      const service = mustFind(base, "Service", store);
      expect(set.spec.serviceName).toBe(store);
      expect(service.spec.selector).toEqual(set.spec.selector.matchLabels);
      const [claim] = set.spec.volumeClaimTemplates;
      expect(mainContainer(set).volumeMounts.map((mount: Doc) => mount.name)).toContain(claim.metadata.name);
      expect(mainContainer(set).readinessProbe).toBeDefined();
    }
    const urls = Object.entries({ ...(configMap(base).data as Record<string, string>), ...secretValues(base) }).filter(([, value]) => /^[a-z+]+:\/\//.test(value));
    for (const [key, value] of urls) {
      const url = new URL(value);
      if (key === "PUBLIC_URL" || key === "RESEND_BASE_URL") continue; // outside addresses
      const service = mustFind(base, "Service", url.hostname);
      expect(service.spec.ports.map((p: Doc) => p.port), key).toContain(defaultPortOf(url));
    }
  });

  test("store credentials in the service URLs are the ones the stores are started with", () => {
    const secrets = secretValues(base);
    const storeEnv = (store: string) => resolvedEnv(base, mainContainer(mustFind(base, "StatefulSet", store)));
    const mysql = new URL(secrets.MYSQL_URL!);
    expect([mysql.username, mysql.password, mysql.pathname]).toEqual([storeEnv("mysql").MYSQL_USER!, storeEnv("mysql").MYSQL_PASSWORD!, `/${storeEnv("mysql").MYSQL_DATABASE}`]);
    const mongo = new URL(secrets.MONGODB_URL!);
    expect([mongo.username, mongo.password]).toEqual([storeEnv("mongo").MONGO_INITDB_ROOT_USERNAME!, storeEnv("mongo").MONGO_INITDB_ROOT_PASSWORD!]);
    expect(mongo.searchParams.get("authSource")).toBe("admin");
    const amqp = new URL(secrets.AMQP_URL!);
    expect([amqp.username, amqp.password]).toEqual([storeEnv("rabbitmq").RABBITMQ_DEFAULT_USER!, storeEnv("rabbitmq").RABBITMQ_DEFAULT_PASS!]);
  });

  test("the migration Job runs db/migrate.ts with auth's MYSQL_URL and retries while MySQL starts", () => {
    const job = mustFind(base, "Job", "migrate");
    const container = mainContainer(job);
    expect(container.command).toEqual(["bun", "db/migrate.ts"]);
    const authEnv = mainContainer(mustFind(base, "Deployment", "auth")).env as Doc[];
    expect(container.env).toEqual(authEnv.filter((variable) => variable.name === "MYSQL_URL"));
    expect(job.spec.backoffLimit).toBeGreaterThanOrEqual(5);
    expect(resolvedEnv(base, mainContainer(mustFind(base, "Deployment", "auth"))).MIGRATE_ON_START).toBe("false");
  });

  test("k3d:up's generated secrets.env has every key the manifests need, and auth accepts its key and URL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m3dio-secrets-"));
    try {
      const file = join(dir, "secrets.env");
      const run = Bun.spawnSync(["bash", join(ROOT, "scripts/k3d-up.sh"), "--secrets-only"], { env: { ...process.env, K3D_SECRETS_FILE: file }, stderr: "pipe" });
      expect(run.stderr.toString()).toBe("");
      expect(run.exitCode).toBe(0);
      const generated = envFile(readFileSync(file, "utf8"));
      expect(Object.keys(generated).sort()).toEqual(Object.keys(envFile(read("k3d/secrets.env.example"))).sort());
      expect(new URL(generated.MYSQL_URL!).password).toBe(generated.MYSQL_PASSWORD!);
      expect(new URL(generated.MONGODB_URL!).password).toBe(generated.MONGO_PASSWORD!);
      expect(new URL(generated.AMQP_URL!).password).toBe(generated.RABBITMQ_PASSWORD!);
      const config = parseConfig(AuthConfig, { JWT_PRIVATE_KEY: generated.JWT_PRIVATE_KEY, MYSQL_URL: generated.MYSQL_URL });
      const key = await loadSigningKey(config, createLogger("deploy-test", "silent"));
      expect(key.alg).toBe("EdDSA");
      expect(key.publicJwk.d).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // every Secret key a manifest needs is in the committed example
    const example = Object.keys(envFile(read("k3d/secrets.env.example")));
    for (const doc of base.filter((doc) => ["Deployment", "StatefulSet", "Job"].includes(doc.kind))) {
      for (const variable of (mainContainer(doc).env ?? []) as Doc[]) {
        const ref = variable.valueFrom?.secretKeyRef;
        if (ref && !ref.optional) expect(example, `${doc.metadata.name} ${variable.name}`).toContain(ref.key);
      }
    }
  });

  test("the keda overlay swaps the HPA for a ScaledObject on the video queue", () => {
    expect(keda.filter((doc) => doc.kind === "HorizontalPodAutoscaler")).toEqual([]);
    const scaled = mustFind(keda, "ScaledObject", "converter");
    expect(scaled.metadata.namespace).toBe("m3dio");
    const converter = mustFind(keda, "Deployment", scaled.spec.scaleTargetRef.name);
    const [trigger] = scaled.spec.triggers;
    expect([trigger.type, trigger.metadata.queueName, trigger.metadata.mode]).toEqual(["rabbitmq", "video", "QueueLength"]);
    const source = (podSpec(converter).containers as Doc[]).find((container) => container.name === scaled.spec.scaleTargetRef.envSourceContainerName);
    expect(source?.env.map((variable: Doc) => variable.name)).toContain(trigger.metadata.hostFromEnv);
    // the overlay renders the same system as k3d/, less the HPA
    const key = (doc: Doc) => `${doc.kind}/${doc.metadata.name}`;
    expect(keda.map(key).filter((name) => name !== "ScaledObject/converter").sort()).toEqual(base.map(key).filter((name) => name !== "HorizontalPodAutoscaler/converter").sort());
  });

  test("the cluster has one server, two agents and the ingress on localhost:8080, which the smoke test and PUBLIC_URL use", () => {
    const cluster = Bun.YAML.parse(read("k3d/cluster.yaml")) as Doc;
    expect([cluster.apiVersion, cluster.kind, cluster.servers, cluster.agents]).toEqual(["k3d.io/v1alpha5", "Simple", 1, 2]);
    expect(cluster.ports).toEqual([{ port: "8080:80", nodeFilters: ["loadbalancer"] }]);
    const up = read("scripts/k3d-up.sh");
    expect(up).toContain(`CLUSTER=${cluster.metadata.name} `);
    expect(read("scripts/k3d-down.sh")).toContain(`CLUSTER=${cluster.metadata.name} `);
    expect(up).toContain("BASE_URL=http://localhost:8080 ");
    expect(up).toContain('bun scripts/smoke.ts "$BASE_URL"');
    expect((configMap(base).data as Record<string, string>).PUBLIC_URL).toBe("http://localhost:8080");
  });
});

// ════════════════════════════════════════════════════════════════════════════
describe("health routes the probes and healthchecks call", () => {
  test("auth answers /health/live and /health/ready (503 naming MySQL while it is away)", async () => {
    const config = parseConfig(AuthConfig, { MYSQL_URL: "mysql://root@127.0.0.1:1/unreachable", LOG_LEVEL: "silent" });
    const auth = await createAuth({ config });
    try {
      const live = await auth.app.handle(new Request(`http://auth${PROBE_PATHS.liveness}`));
      expect(live.status).toBe(200);
      const ready = await auth.app.handle(new Request(`http://auth${PROBE_PATHS.readiness}`));
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe("unavailable");
      expect(body.checks.mysql).not.toBe("up");
    } finally {
      await auth.close();
    }
  });

  test("every present service mounts lib/health.ts, which serves both probe paths", async () => {
    for (const name of PRESENT) {
      const source = read(`${name}.ts`);
      expect(source, name).toContain('from "./lib/health.ts"');
      expect(source, name).toMatch(/\.use\(\s*health\(/);
    }
    const app = new Elysia().use(health({ store: async () => undefined }));
    for (const path of Object.values(PROBE_PATHS)) expect((await app.handle(new Request(`http://service${path}`))).status).toBe(200);
  });
});
