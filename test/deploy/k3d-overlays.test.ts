// The k3d keda overlay, k3d:up's generated secrets.env and the k3d cluster file, with the manifests as
// `kubectl kustomize` renders them (kubectl on the PATH). The base manifests are in k3d.test.ts.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSigningKey } from "../../auth/keys.ts";
import { AuthConfig } from "../../auth.ts";
import { parseConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { configMap, mainContainer, mustFind, NAMESPACE, podSpec, serviceOf } from "./manifests.ts";
import { renderK3d } from "./render.ts";
import { type Doc, envFile, ROOT, read } from "./support.ts";

const { base, keda } = renderK3d();

describe("k3d overlays, scripts and secrets", () => {
  test("k3d:up's generated secrets.env has every key the manifests need, and auth accepts its key and URL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "m3dio-secrets-"));
    try {
      const file = join(dir, "secrets.env");
      const run = Bun.spawnSync(["bash", join(ROOT, "scripts/k3d-up.sh"), "--secrets-only"], {
        env: { ...process.env, K3D_SECRETS_FILE: file },
        stderr: "pipe",
      });
      expect(run.stderr.toString()).toBe("");
      expect(run.exitCode).toBe(0);
      const generated = envFile(readFileSync(file, "utf8"));
      expect(Object.keys(generated).sort()).toEqual(Object.keys(envFile(read("k3d/secrets.env.example"))).sort());
      expect(new URL(generated.MYSQL_URL!).password).toBe(generated.MYSQL_PASSWORD!);
      expect(new URL(generated.MONGODB_URL!).password).toBe(generated.MONGO_PASSWORD!);
      expect(new URL(generated.AMQP_URL!).password).toBe(generated.RABBITMQ_PASSWORD!);
      const config = parseConfig(AuthConfig, {
        JWT_PRIVATE_KEY: generated.JWT_PRIVATE_KEY,
        MYSQL_URL: generated.MYSQL_URL,
      });
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

  test("KEDA reaches the broker from its own namespace: AMQP_URL names RabbitMQ's Service by its full name", () => {
    // the scaler reads AMQP_URL from the converter's env (hostFromEnv) but connects from the keda namespace
    const dir = mkdtempSync(join(tmpdir(), "m3dio-secrets-"));
    try {
      const file = join(dir, "secrets.env");
      const secretsOnly = () =>
        Bun.spawnSync(["bash", join(ROOT, "scripts/k3d-up.sh"), "--secrets-only"], {
          env: { ...process.env, K3D_SECRETS_FILE: file },
          stderr: "pipe",
        });
      expect(secretsOnly().exitCode).toBe(0);
      const fresh = envFile(readFileSync(file, "utf8"));
      const fullName = `rabbitmq.${NAMESPACE}.svc.cluster.local`;
      for (const url of [fresh.AMQP_URL!, envFile(read("k3d/secrets.env.example")).AMQP_URL!]) {
        expect(new URL(url).hostname).toBe(fullName);
        expect(serviceOf(keda, new URL(url).hostname).spec.ports.map((p: Doc) => p.port)).toContain(5672);
      }
      // a file k3d:up wrote when the URL named `rabbitmq` is given the full name, its password kept, still private
      const short = `amqp://m3dio:${fresh.RABBITMQ_PASSWORD}@rabbitmq:5672`;
      writeFileSync(file, readFileSync(file, "utf8").replace(fresh.AMQP_URL!, short), { mode: 0o600 });
      expect(secretsOnly().exitCode).toBe(0);
      const upgraded = envFile(readFileSync(file, "utf8"));
      expect(upgraded).toEqual({ ...fresh, AMQP_URL: `amqp://m3dio:${fresh.RABBITMQ_PASSWORD}@${fullName}:5672` });
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the keda overlay swaps the HPA for a ScaledObject on the video queue", () => {
    expect(keda.filter((doc) => doc.kind === "HorizontalPodAutoscaler")).toEqual([]);
    const scaled = mustFind(keda, "ScaledObject", "converter");
    expect(scaled.metadata.namespace).toBe("m3dio");
    const converter = mustFind(keda, "Deployment", scaled.spec.scaleTargetRef.name);
    const [trigger] = scaled.spec.triggers;
    expect([trigger.type, trigger.metadata.queueName, trigger.metadata.mode]).toEqual([
      "rabbitmq",
      "video",
      "QueueLength",
    ]);
    const source = (podSpec(converter).containers as Doc[]).find(
      (container) => container.name === scaled.spec.scaleTargetRef.envSourceContainerName,
    );
    expect(source?.env.map((variable: Doc) => variable.name)).toContain(trigger.metadata.hostFromEnv);
    // scaling down from N is the HPA's, as with the CPU autoscaler: cooldownPeriod only times a scale to zero
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    expect(scaled.spec.cooldownPeriod).toBeUndefined();
    expect(scaled.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown).toEqual(
      mustFind(base, "HorizontalPodAutoscaler", "converter").spec.behavior.scaleDown,
    );
    // the overlay renders the same system as k3d/, less the HPA
    const key = (doc: Doc) => `${doc.kind}/${doc.metadata.name}`;
    expect(
      keda
        .map(key)
        .filter((name) => name !== "ScaledObject/converter")
        .sort(),
    ).toEqual(
      base
        .map(key)
        .filter((name) => name !== "HorizontalPodAutoscaler/converter")
        .sort(),
    );
  });

  test("the cluster has one server, two agents and the ingress on localhost:8080, which the smoke test and PUBLIC_URL use", () => {
    const cluster = Bun.YAML.parse(read("k3d/cluster.yaml")) as Doc;
    expect([cluster.apiVersion, cluster.kind, cluster.servers, cluster.agents]).toEqual([
      "k3d.io/v1alpha5",
      "Simple",
      1,
      2,
    ]);
    expect(cluster.ports).toEqual([{ port: "8080:80", nodeFilters: ["loadbalancer"] }]);
    const up = read("scripts/k3d-up.sh");
    expect(up).toContain(`CLUSTER=${cluster.metadata.name} `);
    expect(read("scripts/k3d-down.sh")).toContain(`CLUSTER=${cluster.metadata.name} `);
    expect(up).toContain("BASE_URL=http://localhost:8080 ");
    expect(up).toContain('bun scripts/smoke.ts "$BASE_URL"');
    expect((configMap(base).data as Record<string, string>).PUBLIC_URL).toBe("http://localhost:8080");
  });
});
