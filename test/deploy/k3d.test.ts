// The k3d base manifests as `kubectl kustomize` renders them (kubectl on the PATH), checked against Kubernetes, compose
// and the services. The keda overlay, k3d:up's secrets and the cluster file are in k3d-overlays.test.ts.
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../lib/config.ts";
import { APP_IMAGE, defaultPortOf, environment, services } from "./compose.ts";
import {
  bytes,
  configMap,
  find,
  mainContainer,
  mustFind,
  podSpec,
  resolvedEnv,
  secretValues,
  serviceOf,
} from "./manifests.ts";
import { renderK3d } from "./render.ts";
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
  stageChain,
} from "./support.ts";

const { base, keda } = renderK3d();

describe("k3d manifests", () => {
  const APP_WORKLOADS = [...SERVICES.map((name) => ["Deployment", name] as const), ["Job", "migrate"] as const];

  test("kubectl kustomize renders k3d and its keda overlay with every piece of the system", () => {
    const kinds = (docs: Doc[]) =>
      docs.map((doc) => `${doc.kind}/${doc.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort();
    expect(kinds(base)).toEqual(
      [
        "Namespace/m3dio",
        "ConfigMap/m3dio-config",
        "Secret/m3dio-secrets",
        "StatefulSet/mysql",
        "StatefulSet/mongo",
        "StatefulSet/rabbitmq",
        "Service/mysql",
        "Service/mongo",
        "Service/rabbitmq",
        "Job/migrate",
        "Deployment/auth",
        "Service/auth",
        "Deployment/gateway",
        "Service/gateway",
        "Deployment/converter",
        "HorizontalPodAutoscaler/converter",
        "Deployment/notifier",
        "Ingress/gateway",
      ].sort(),
    );
    for (const doc of base)
      if (doc.kind !== "Namespace") expect(doc.metadata.namespace, `${doc.kind}/${doc.metadata.name}`).toBe("m3dio");
  });

  test("every rendered object validates against the Kubernetes schemas (kubernetes-models)", async () => {
    for (const doc of [...base, ...keda]) {
      const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
      const modulePath = group.endsWith("keda.sh")
        ? `@kubernetes-models/keda/${group}/${version}/${doc.kind}`
        : `kubernetes-models/${group ? `${group}/` : ""}${version}/${doc.kind}`;
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
      const modulePath = group.endsWith("keda.sh")
        ? `@kubernetes-models/keda/${group}/${version}/${doc.kind}`
        : `kubernetes-models/${group ? `${group}/` : ""}${version}/${doc.kind}`;
      const type = `I${doc.kind}${i}`;
      if (!seen.has(type)) lines.push(`import type { I${doc.kind} as ${type} } from "${modulePath}";`);
      seen.add(type);
      lines.push(`export const object${i}: ${type} = ${JSON.stringify(doc, null, 2)};`);
    });
    const typecheck = (name: string, source: string) => {
      const file = join(dir, name);
      writeFileSync(file, source);
      const tsc = Bun.spawnSync(
        [
          join(ROOT, "node_modules/.bin/tsc"),
          "--ignoreConfig",
          "--noEmit",
          "--strict",
          "--skipLibCheck",
          "--target",
          "esnext",
          "--module",
          "preserve",
          "--moduleResolution",
          "bundler",
          "--types",
          "",
          file,
        ],
        { cwd: dir, stdout: "pipe", stderr: "pipe" },
      );
      return {
        code: tsc.exitCode,
        errors: `${tsc.stdout.toString()}${tsc.stderr.toString()}`.split("\n").filter((line) => line.includes("error")),
      };
    };
    expect(typecheck("rendered.ts", `${lines.join("\n")}\n`)).toEqual({ code: 0, errors: [] });
    // the check does catch a misspelt field
    const misspelt = typecheck(
      "control.ts",
      'import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";\nexport const d: IDeployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { selector: {}, template: { spec: { containers: [{ name: "x", readinessprobe: {} }] } } } };\n',
    );
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
        if (fromSecret && !fromSecret.optional)
          expect(Object.keys(secrets), `${variable.name} ← Secret`).toContain(fromSecret.key);
      }
      const env = resolvedEnv(base, container);
      for (const required of requiredWithoutDefault(schema))
        expect(env[required], `${required} is required`).toBeDefined();
      const values = Object.fromEntries(
        Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
      );
      expect(() => parseConfig(schema, values)).not.toThrow();
      expect(Number(env.PORT)).toBe(defaultPort(schema));
    });
  }

  test("container ports, probes (/health/ready, /health/live), Services and compose agree on each service's PORT", () => {
    for (const name of SERVICES) {
      const container = mainContainer(mustFind(base, "Deployment", name));
      const port = Number(resolvedEnv(base, container).PORT);
      expect(port, name).toBe(Number(environment(services[name]!).PORT));
      expect(container.ports.map((p: Doc) => p.containerPort)).toEqual([
        port,
        Number(resolvedEnv(base, container).METRICS_PORT),
      ]);
      expect([container.readinessProbe.httpGet.path, container.readinessProbe.httpGet.port]).toEqual([
        PROBE_PATHS.readiness,
        port,
      ]);
      expect([container.livenessProbe.httpGet.path, container.livenessProbe.httpGet.port]).toEqual([
        PROBE_PATHS.liveness,
        port,
      ]);
      expect(container.command).toEqual(services[name]!.command);
      const service = find(base, "Service", name);
      if (service) {
        expect(service.spec.selector).toEqual(mustFind(base, "Deployment", name).spec.selector.matchLabels);
        expect(service.spec.ports.map((p: Doc) => p.targetPort)).toEqual([port]);
      }
    }
  });

  test("/metrics: each pod's METRICS_PORT (compose's, the schema's default) is a named port Prometheus is told to scrape, on no Service", async () => {
    for (const name of SERVICES) {
      const deployment = mustFind(base, "Deployment", name);
      const container = mainContainer(deployment);
      const env = resolvedEnv(base, container);
      const metricsPort = Number(env.METRICS_PORT);
      expect(metricsPort, name).toBe(Number(propertiesOf(await configSchema(name)).METRICS_PORT?.default));
      expect(metricsPort, name).toBe(Number(environment(services[name]!).METRICS_PORT));
      expect(metricsPort, name).not.toBe(Number(env.PORT));
      expect(container.ports.find((p: Doc) => p.name === "metrics")?.containerPort, name).toBe(metricsPort);
      expect(deployment.spec.template.metadata.annotations, name).toMatchObject({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": String(metricsPort),
        "prometheus.io/path": "/metrics",
      });
      const service = find(base, "Service", name);
      if (service)
        expect(
          service.spec.ports.map((p: Doc) => p.targetPort),
          name,
        ).not.toContain(metricsPort);
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
    const imageUser = stageChain(stages, "runtime")[0]!
      .instructions.find((line) => line.startsWith("USER "))!
      .split(/\s+/)[1]!
      .split(":")[0];
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
          expect(Object.keys(container.resources?.[kind] ?? {}).sort(), `${doc.metadata.name} ${kind}`).toEqual([
            "cpu",
            "memory",
          ]);
        }
        expect(bytes(container.resources.requests.memory)).toBeLessThanOrEqual(
          bytes(container.resources.limits.memory),
        );
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
    const urls = Object.entries({ ...(configMap(base).data as Record<string, string>), ...secretValues(base) }).filter(
      ([, value]) => /^[a-z+]+:\/\//.test(value),
    );
    for (const [key, value] of urls) {
      const url = new URL(value);
      if (key === "PUBLIC_URL" || key === "RESEND_BASE_URL") continue; // outside addresses
      const service = serviceOf(base, url.hostname);
      expect(
        service.spec.ports.map((p: Doc) => p.port),
        key,
      ).toContain(defaultPortOf(url));
    }
  });

  test("the stores' probes that start a client (mysqladmin, mongosh, rabbitmq-diagnostics) may take 10 s and more", () => {
    for (const store of ["mysql", "mongo", "rabbitmq"]) {
      const container = mainContainer(mustFind(base, "StatefulSet", store));
      for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const probe = container[kind];
        if (!probe?.exec) continue;
        expect(probe.timeoutSeconds, `${store} ${kind}`).toBeGreaterThanOrEqual(10);
        expect(probe.timeoutSeconds, `${store} ${kind}`).toBeLessThanOrEqual(15);
      }
    }
  });

  test("MongoDB is ready only when the real server answers a ping over the pod's address, not the first-run init one", () => {
    // the image's entrypoint creates the root user with a temporary mongod bound to 127.0.0.1 only
    const mongo = mainContainer(mustFind(base, "StatefulSet", "mongo"));
    const podIp = (mongo.env as Doc[]).find((variable) => variable.name === "POD_IP");
    expect(podIp?.valueFrom?.fieldRef?.fieldPath).toBe("status.podIP");
    for (const kind of ["startupProbe", "readinessProbe"]) {
      const [shell, flag, script] = mongo[kind].exec.command as string[];
      expect([shell, flag], kind).toEqual(["sh", "-c"]);
      expect(script, kind).toStartWith('mongosh --quiet --host "$POD_IP" ');
      expect(script, kind).toContain("db.adminCommand({ ping: 1 }).ok === 1");
      // mongosh starts a JavaScript runtime first: a short timeout fails a slow but healthy start
      expect(mongo[kind].timeoutSeconds, kind).toBeGreaterThanOrEqual(10);
    }
    // liveness waits for the startup probe, which allows minutes for the first start's init
    const startup = mongo.startupProbe;
    expect(startup.periodSeconds * startup.failureThreshold).toBeGreaterThanOrEqual(180);
    expect(mongo.livenessProbe.tcpSocket.port).toBe(27017);
    // nothing probes localhost, which the init server answers on
    expect(JSON.stringify([mongo.startupProbe, mongo.readinessProbe, mongo.livenessProbe])).not.toMatch(
      /127\.0\.0\.1|localhost/,
    );
  });

  test("store credentials in the service URLs are the ones the stores are started with", () => {
    const secrets = secretValues(base);
    const storeEnv = (store: string) => resolvedEnv(base, mainContainer(mustFind(base, "StatefulSet", store)));
    const mysql = new URL(secrets.MYSQL_URL!);
    expect([mysql.username, mysql.password, mysql.pathname]).toEqual([
      storeEnv("mysql").MYSQL_USER!,
      storeEnv("mysql").MYSQL_PASSWORD!,
      `/${storeEnv("mysql").MYSQL_DATABASE}`,
    ]);
    const mongo = new URL(secrets.MONGODB_URL!);
    expect([mongo.username, mongo.password]).toEqual([
      storeEnv("mongo").MONGO_INITDB_ROOT_USERNAME!,
      storeEnv("mongo").MONGO_INITDB_ROOT_PASSWORD!,
    ]);
    expect(mongo.searchParams.get("authSource")).toBe("admin");
    const amqp = new URL(secrets.AMQP_URL!);
    expect([amqp.username, amqp.password]).toEqual([
      storeEnv("rabbitmq").RABBITMQ_DEFAULT_USER!,
      storeEnv("rabbitmq").RABBITMQ_DEFAULT_PASS!,
    ]);
  });

  test("auth and the gateway take GATEWAY_SECRET from the same key of the Secret", () => {
    const [auth, gateway] = ["auth", "gateway"].map((name) =>
      (mainContainer(mustFind(base, "Deployment", name)).env as Doc[]).find((v) => v.name === "GATEWAY_SECRET"),
    );
    expect(auth?.valueFrom?.secretKeyRef).toMatchObject({
      name: expect.stringMatching(/^m3dio-secrets/),
      key: "GATEWAY_SECRET",
    });
    expect(gateway?.valueFrom?.secretKeyRef).toEqual(auth!.valueFrom.secretKeyRef);
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
});
