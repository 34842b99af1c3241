// The k3d manifests as `kubectl kustomize` renders them, and lookups into the rendered objects.
import { type Doc, read } from "./support.ts";

/** The namespace k3d/kustomization.yaml puts everything in. */
export const NAMESPACE = (Bun.YAML.parse(read("k3d/kustomization.yaml")) as Doc).namespace as string;

export function kustomize(args: string[]): Doc[] {
  const result = Bun.spawnSync(["kubectl", "kustomize", ...args], { stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`kubectl kustomize ${args.join(" ")} failed: ${result.stderr.toString()}`);
  const parsed = Bun.YAML.parse(result.stdout.toString()) as Doc | Doc[];
  const docs = (Array.isArray(parsed) ? parsed : [parsed]).filter(Boolean);
  // kubectl wraps long base64 values over lines, which the API server's decoder skips
  for (const doc of docs) {
    if (doc.kind === "Secret")
      for (const key of Object.keys(doc.data ?? {})) doc.data[key] = String(doc.data[key]).replace(/\s+/g, "");
  }
  return docs;
}

export const find = (docs: Doc[], kind: string, name: string) =>
  docs.find((doc) => doc.kind === kind && doc.metadata?.name === name);
export const mustFind = (docs: Doc[], kind: string, name: string): Doc => {
  const doc = find(docs, kind, name);
  if (!doc) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return doc;
};
/** The Service a cluster-internal host names: `rabbitmq`, or `rabbitmq.m3dio.svc.cluster.local` from any namespace. */
export function serviceOf(docs: Doc[], hostname: string): Doc {
  const [name, namespace, ...rest] = hostname.split(".");
  if (namespace !== undefined && `${namespace}.${rest.join(".")}` !== `${NAMESPACE}.svc.cluster.local`)
    throw new Error(`${hostname} is not a Service of the namespace ${NAMESPACE}`);
  return mustFind(docs, "Service", name!);
}
export const podSpec = (workload: Doc): Doc => workload.spec.template.spec;
export const mainContainer = (workload: Doc): Doc => podSpec(workload).containers[0];
export const configMap = (docs: Doc[]) =>
  docs.find((doc) => doc.kind === "ConfigMap" && doc.metadata.name.startsWith("m3dio-config"))!;
const secret = (docs: Doc[]) =>
  docs.find((doc) => doc.kind === "Secret" && doc.metadata.name.startsWith("m3dio-secrets"))!;
export const secretValues = (docs: Doc[]): Record<string, string> =>
  Object.fromEntries(
    Object.entries(secret(docs).data as Record<string, string>).map(([key, value]) => [
      key,
      Buffer.from(value, "base64").toString("utf8"),
    ]),
  );
/** What a container's env resolves to, from literal values, the ConfigMap and the Secret. */
export function resolvedEnv(docs: Doc[], container: Doc): Record<string, string | undefined> {
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
export function bytes(quantity: string): number {
  const match = String(quantity).match(/^(\d+(?:\.\d+)?)([KMGT]i?)?$/);
  if (!match) throw new Error(`not a quantity: ${quantity}`);
  const units: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(match[1]) * (match[2] ? units[match[2]]! : 1);
}
