// What the deploy checks read: the repo's files, its services and their config schemas, the Dockerfile's stages, ignore and env files.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { TObject, TSchema } from "@sinclair/typebox";

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML and JSON documents, read along deep paths in assertions
export type Doc = Record<string, any>;

export const ROOT = join(import.meta.dir, "../..");
export const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
export const SERVICES = ["auth", "gateway", "converter", "notifier"] as const;
export type ServiceName = (typeof SERVICES)[number];
/** Services whose file exists; the others are still being written. */
export const PRESENT = SERVICES.filter((name) => existsSync(join(ROOT, `${name}.ts`)));
export const PROBE_PATHS = { readiness: "/health/ready", liveness: "/health/live" };

// ── service config schemas ──────────────────────────────────────────────────
const schemaCache = new Map<string, Promise<TObject>>();
/** `<Name>Config` exported by `<name>.ts`; importing does not start the service. */
export function configSchema(name: ServiceName): Promise<TObject> {
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
export const propertiesOf = (schema: TObject) => schema.properties as Record<string, TSchema>;
/** Variables the service cannot start without: required and no default. */
export const requiredWithoutDefault = (schema: TObject) =>
  (schema.required ?? []).filter((name) => propertiesOf(schema)[name]?.default === undefined);
export const defaultPort = (schema: TObject) => Number(propertiesOf(schema).PORT?.default);

// ── Dockerfile ──────────────────────────────────────────────────────────────
export interface Stage {
  name: string;
  from: string;
  instructions: string[];
}
export function dockerStages(): { args: Record<string, string>; stages: Stage[] } {
  const lines = read("Dockerfile")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
    if (from)
      stages.push({
        from: from[1]!.replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? ""),
        name: from[2] ?? "",
        instructions: [],
      });
    else if (stages.length === 0 && /^ARG\s/i.test(line)) {
      const [name, value] = line.replace(/^ARG\s+/i, "").split("=");
      args[name!] = value ?? "";
    } else stages.at(-1)?.instructions.push(line);
  }
  return { args, stages };
}
/** The stage and every stage it is built FROM, nearest first. */
export function stageChain(stages: Stage[], name: string): Stage[] {
  const chain: Stage[] = [];
  for (let stage = stages.find((s) => s.name === name); stage; stage = stages.find((s) => s.name === stage!.from))
    chain.push(stage);
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
    if (candidates.some((candidate) => candidate === pattern || new Bun.Glob(pattern).match(candidate)))
      ignored = !negated;
  }
  return ignored;
}
export const dockerignored = (path: string) => ignoredBy(".dockerignore", path);
export const gitignored = (path: string) => ignoredBy(".gitignore", path);

// ── env files ───────────────────────────────────────────────────────────────
export function envFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#") && line.includes("="))
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  );
}
/** SHUTDOWN_GRACE_MS as deployed: k3d's config.env, or the converter's default. */
export async function converterGraceMs(): Promise<number> {
  const configured = Number(envFile(read("k3d/config.env")).SHUTDOWN_GRACE_MS);
  const fallback = PRESENT.includes("converter")
    ? Number(propertiesOf(await configSchema("converter")).SHUTDOWN_GRACE_MS?.default ?? 0)
    : 0;
  return Math.max(configured || 0, fallback);
}
