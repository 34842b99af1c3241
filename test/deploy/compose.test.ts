// compose.yaml against the Compose Specification's schema, each service's config schema, ports, healthchecks and secrets.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import Ajv from "ajv";
import { parseConfig } from "../../lib/config.ts";
import {
  APP_IMAGE,
  compose,
  defaultPortOf,
  environment,
  interpolate,
  listeningPorts,
  services,
  urlsIn,
} from "./compose.ts";
import {
  configSchema,
  converterGraceMs,
  type Doc,
  defaultPort,
  dockerStages,
  gitignored,
  PRESENT,
  PROBE_PATHS,
  propertiesOf,
  ROOT,
  read,
  requiredWithoutDefault,
  SERVICES,
} from "./support.ts";

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
      for (const required of requiredWithoutDefault(schema))
        expect(typeof env[required], `${required} is required`).toBe("string");
      expect(Number(env.PORT)).toBe(defaultPort(schema));
      // and the values compose sets are ones the service accepts
      const set = Object.fromEntries(
        Object.entries(env)
          .filter((entry): entry is [string, string] => entry[1] !== null)
          .map(([key, value]) => [key, interpolate(value)]),
      );
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
        if (condition === "service_healthy")
          expect(services[dependency]!.healthcheck?.test, `${dependency} has no healthcheck`).toBeDefined();
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

  test("healthchecks give a slow first start time: 10 s and more for the store checks that start a runtime", () => {
    const seconds = (duration: string) => Number(String(duration).replace(/s$/, ""));
    for (const [name, service] of Object.entries(services)) {
      const check = service.healthcheck;
      if (!check) continue;
      // checked often while starting (start_interval; Docker Engine 25+), so healthy soon after it is
      expect(seconds(check.start_interval), name).toBeLessThan(seconds(check.interval));
      expect(seconds(check.start_period), name).toBeGreaterThanOrEqual(30);
      const command = (check.test as string[]).join(" ");
      // rabbitmq-diagnostics starts an Erlang VM, mongosh a JavaScript runtime: seconds on a busy machine
      if (/rabbitmq-diagnostics|mongosh|mysqladmin/.test(command)) {
        expect(seconds(check.timeout), name).toBeGreaterThanOrEqual(10);
        expect(seconds(check.timeout), name).toBeLessThanOrEqual(15);
        // a first start initialises the data directory before the check can pass
        expect(seconds(check.start_period), name).toBeGreaterThanOrEqual(60);
      }
    }
    // and the file says what that needs
    expect(read("compose.yaml").replace(/\n#\s*/g, " ")).toContain("start_interval needs Docker Engine 25 or later");
  });

  test("the Bun healthcheck command reports healthy on 200 and unhealthy on 503 or no answer", async () => {
    const scripts = SERVICES.map((name) =>
      (services[name]!.healthcheck.test as string[])[3]!.replace(/127\.0\.0\.1:\d+/, "127.0.0.1:PORT"),
    );
    expect(new Set(scripts).size).toBe(1);
    const ready = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: (request) =>
        new Response(null, { status: new URL(request.url).pathname === PROBE_PATHS.readiness ? 200 : 404 }),
    });
    const unready = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(null, { status: 503 }) });
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response(null) });
    const closedPort = closed.port;
    closed.stop(true);
    const exitCode = (port: number | undefined) =>
      Bun.spawn([process.execPath, "-e", scripts[0]!.replace("PORT", String(port))], {
        stdout: "ignore",
        stderr: "ignore",
      }).exited;
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
    expect(services.gateway!.ports.map((port: string) => interpolate(port))).toEqual([
      `${environment(services.gateway!).PORT}:8080`,
    ]);
    for (const store of ["mysql", "mongo", "rabbitmq"]) {
      for (const port of services[store]!.ports) expect(interpolate(port)).toMatch(/^127\.0\.0\.1:/);
    }
    expect(services.rabbitmq!.ports.map((port: string) => interpolate(port))).toContain("127.0.0.1:15672:15672");
    expect(services.rabbitmq!.image).toMatch(/-management$/);
  });

  test("every port published on this machine can move: its own *_HOST_PORT, named in compose's header and the README", () => {
    const readme = read("README.md");
    const header = read("compose.yaml").split("\nname:")[0]!;
    const variables = new Set<string>();
    for (const [name, service] of Object.entries(services)) {
      for (const port of (service.ports ?? []) as string[]) {
        const [, variable, fallback, target] = port.match(/\$\{(\w+_HOST_PORT):-(\d+)\}:(\d+)$/) ?? [];
        expect(variable, `${name} ${port}`).toBeDefined();
        expect(fallback, `${name} ${port}`).toBe(target!); // by default the usual port
        expect(variables.has(variable!), variable).toBe(false);
        variables.add(variable!);
        // moved, it is published there and still reaches the same port inside
        expect(interpolate(port, { [variable!]: "18080" })).toEndWith(`18080:${target}`);
        expect(header, variable).toContain(variable!);
        expect(readme.includes(`\`${variable}\``), `${variable} in the README`).toBe(true);
      }
    }
    expect([...variables].sort()).toEqual([
      "GATEWAY_HOST_PORT",
      "MONGO_HOST_PORT",
      "MYSQL_HOST_PORT",
      "RABBITMQ_HOST_PORT",
      "RABBITMQ_UI_HOST_PORT",
    ]);
  });

  test("each service has its own METRICS_PORT (the schema's default, not its PORT), published nowhere", async () => {
    for (const name of SERVICES) {
      const env = environment(services[name]!);
      const metricsPort = Number(env.METRICS_PORT);
      expect(metricsPort, name).toBe(Number(propertiesOf(await configSchema(name)).METRICS_PORT?.default));
      expect(metricsPort, name).not.toBe(Number(env.PORT));
      const published = (services[name]!.ports ?? []).map((port: string) =>
        Number(interpolate(port).split(":").at(-1)),
      );
      expect(published, name).not.toContain(metricsPort);
    }
  });

  test("the stores keep their data in named volumes", () => {
    const dataDirs: Record<string, string> = {
      mysql: "/var/lib/mysql",
      mongo: "/data/db",
      rabbitmq: "/var/lib/rabbitmq",
    };
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
    for (const path of [".env.example", "k3d/secrets.env.example", "compose.yaml"])
      expect(gitignored(path), path).toBe(false);
  });

  test("auth and the gateway share one GATEWAY_SECRET, from .env or the dev default", () => {
    for (const vars of [{}, { GATEWAY_SECRET: "from-dot-env-0123456789" }] as Record<string, string>[]) {
      const [auth, gateway] = ["auth", "gateway"].map((name) =>
        interpolate(environment(services[name]!).GATEWAY_SECRET!, vars),
      );
      expect(auth).toBe(gateway!);
      expect(auth!.length).toBeGreaterThanOrEqual(16);
    }
  });

  test("auth's MYSQL_URL carries the root password MySQL is given, from .env or the dev default", () => {
    for (const vars of [{}, { MYSQL_ROOT_PASSWORD: "from-dot-env" }] as Record<string, string>[]) {
      const password = interpolate(services.mysql!.environment.MYSQL_ROOT_PASSWORD, vars);
      for (const name of ["auth", "migrate", "test"]) {
        const url = new URL(interpolate(environment(services[name]!).MYSQL_URL!, vars));
        expect([url.username, url.password, url.hostname], name).toEqual(["root", password, "mysql"]);
      }
    }
    expect(new URL(interpolate(environment(services.auth!).MYSQL_URL!)).pathname).toBe(
      `/${services.mysql!.environment.MYSQL_DATABASE}`,
    );
  });

  test("the test profile runs the whole suite from the build stage against compose's MySQL, MongoDB and RabbitMQ", () => {
    const runner = services.test!;
    expect(runner.profiles).toEqual(["test"]);
    expect(runner.build.target).toBe("build");
    // rebuilt on every `run`, so a code change is what gets tested, not the image of the run before
    expect(runner.pull_policy).toBe("build");
    expect(runner.command).toEqual(["bun", "run", "test"]);
    const env = environment(runner);
    expect(new URL(interpolate(env.MYSQL_URL!)).hostname).toBe("mysql");
    expect(new URL(env.MONGODB_URL!).hostname).toBe("mongo");
    const amqp = new URL(env.AMQP_URL!);
    const api = new URL(env.RABBITMQ_API_URL!);
    expect([amqp.hostname, api.hostname, api.port]).toEqual(["rabbitmq", "rabbitmq", "15672"]);
    expect([api.username, api.password]).toEqual([amqp.username, amqp.password]);
    // every other service, and a plain `docker compose up`, leaves the test runner out
    for (const [name, service] of Object.entries(services))
      if (name !== "test") expect(service.profiles, name).toBeUndefined();
  });
});
