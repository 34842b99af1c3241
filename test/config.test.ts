// The docs match the code: every variable a service reads is in .env.example and
// the README's table, and the example values are valid for every service.
import { describe, expect, test } from "bun:test";
import { AuthConfig } from "../auth.ts";
import { ConverterConfig } from "../converter.ts";
import { GatewayConfig } from "../gateway.ts";
import { parseConfig } from "../lib/config.ts";
import { NotifierConfig } from "../notifier.ts";

const schemas = { auth: AuthConfig, gateway: GatewayConfig, converter: ConverterConfig, notifier: NotifierConfig };
const root = `${import.meta.dir}/..`;
const example = await Bun.file(`${root}/.env.example`).text();
const readme = await Bun.file(`${root}/README.md`).text();
const exampleEnv = Object.fromEntries(
  example
    .split("\n")
    .filter((line) => /^[A-Z0-9_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
);

describe.each(Object.entries(schemas))("%s", (service, schema) => {
  const names = Object.keys(schema.properties);

  test("every variable it reads has a line in .env.example (PORT and METRICS_PORT differ per service and are left to the defaults)", () => {
    const perService = ["PORT", "METRICS_PORT"];
    expect(names.filter((name) => !perService.includes(name) && !(name in exampleEnv))).toEqual([]);
  });

  test("every variable it reads is in the README's configuration table", () => {
    expect(names.filter((name) => !readme.includes(`| \`${name}\``))).toEqual([]);
  });

  test(".env.example's values are valid for it", () => {
    expect(() => parseConfig(schema, exampleEnv)).not.toThrow();
  });

  test(`it starts on its documented default port`, () => {
    const ports = { auth: 3001, gateway: 8080, converter: 3002, notifier: 3003 };
    expect(parseConfig(schema, {}).PORT).toBe(ports[service as keyof typeof ports]);
  });

  test("it serves /metrics on its documented METRICS_PORT, named in .env.example, apart from PORT", () => {
    const metricsPorts = { auth: 9101, gateway: 9102, converter: 9103, notifier: 9104 };
    const { PORT, METRICS_PORT } = parseConfig(schema, {}) as { PORT: number; METRICS_PORT: number };
    expect(METRICS_PORT).toBe(metricsPorts[service as keyof typeof metricsPorts]);
    expect(METRICS_PORT).not.toBe(PORT);
    expect(example).toContain(`# ${service} (PORT ${PORT}, METRICS_PORT ${METRICS_PORT})`);
  });
});

test(".env.example names no variable that no service reads", () => {
  const known = new Set(Object.values(schemas).flatMap((schema) => Object.keys(schema.properties)));
  expect(Object.keys(exampleEnv).filter((name) => !known.has(name))).toEqual([]);
});
