// compose.yaml as parsed, with Compose's interpolation and a service's variables, ports and URLs.
import { type Doc, read } from "./support.ts";

const composeText = read("compose.yaml");
export const compose = Bun.YAML.parse(composeText) as Doc;
export const services = compose.services as Record<string, Doc>;
export const APP_IMAGE = services.auth!.image as string;

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $$. */
export function interpolate(value: string, env: Record<string, string> = {}): string {
  return value.replace(
    /\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}/g,
    (whole, name: string | undefined, op: string | undefined, fallback: string | undefined) => {
      if (whole === "$$") return "$";
      const set = env[name!];
      if (op === ":-") return set ? set : (fallback ?? "");
      if (op === "-") return set ?? fallback ?? "";
      return set ?? "";
    },
  );
}
export const environment = (service: Doc): Record<string, string | null> => {
  const env = service.environment ?? {};
  if (Array.isArray(env))
    return Object.fromEntries(
      env.map((entry: string) => [
        entry.split("=")[0],
        entry.includes("=") ? entry.slice(entry.indexOf("=") + 1) : null,
      ]),
    );
  return Object.fromEntries(Object.entries(env).map(([key, value]) => [key, value === null ? null : String(value)]));
};
/** Ports a compose service listens on inside the network: published container ports and its PORT. */
export function listeningPorts(service: Doc): number[] {
  const ports = (service.ports ?? []).map((port: string) => Number(interpolate(String(port)).split(":").at(-1)));
  const own = environment(service).PORT;
  return own ? [...ports, Number(own)] : ports;
}
/** URLs among a service's variables (after interpolation), as URL objects. */
export function urlsIn(env: Record<string, string | null>, vars: Record<string, string> = {}): [string, URL][] {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => typeof entry[1] === "string" && /^[a-z+]+:\/\//.test(entry[1]))
    .map(([key, value]) => [key, new URL(interpolate(value, vars))]);
}
export const defaultPortOf = (url: URL) =>
  Number(url.port || { "http:": 80, "https:": 443, "amqp:": 5672, "mysql:": 3306, "mongodb:": 27017 }[url.protocol]);
