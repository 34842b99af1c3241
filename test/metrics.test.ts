// /metrics counts each request under the status the client was actually answered (a
// 404 for an unknown path, the problem+json status of an error, 206 for a range), and
// is served by a metrics app of its own (METRICS_PORT), never by the service's app. The
// runner's wiring of both ports, and the 413 before Bun's, are checked on the running
// system in test/faults/metrics.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { limitedJson } from "../lib/json.ts";
import { createLogger } from "../lib/log.ts";
import { createMetrics } from "../lib/metrics.ts";
import { NotFound, problems, Unauthorized } from "../lib/problem.ts";

class StoreAway extends Error {}

const metrics = createMetrics("metrics-test");
const app = new Elysia()
  .use(problems(createLogger("metrics-test", "silent"), { unavailable: (error) => error instanceof StoreAway }))
  .use(metrics.plugin)
  .get("/value", () => ({ ok: true }))
  .post("/created", ({ status }) => status(201, { ok: true }))
  .get("/range-response", () => new Response("part", { status: 206, headers: { "content-range": "bytes 0-3/10" } }))
  .get("/range-set", ({ set }) => {
    set.status = 206;
    return "part";
  })
  .get("/no-content", ({ status }) => status(204, undefined))
  .get("/thrown-404", () => {
    throw new NotFound("no such job");
  })
  .get("/thrown-401", () => {
    throw new Unauthorized();
  })
  .post("/validated", ({ body }) => body, { body: t.Object({ name: t.String() }) })
  .post("/small-json", ({ body }) => body, { parse: limitedJson(16) })
  .get("/store-away", () => {
    throw new StoreAway("connection refused");
  })
  .get("/bug", () => {
    throw new TypeError("undefined is not a function");
  });

let base = "";
beforeAll(() => {
  app.listen({ port: 0, hostname: "127.0.0.1" });
  base = `http://127.0.0.1:${app.server!.port}`;
});
afterAll(() => app.stop(true));

/** `http_requests_total` of this method, route and status, from the metrics app. */
async function counted(method: string, route: string, status: number): Promise<number> {
  const text = await (await metrics.app.handle(new Request("http://localhost/metrics"))).text();
  const line = text
    .split("\n")
    .find(
      (sample) =>
        sample.startsWith("http_requests_total{") &&
        sample.includes(`method="${method}"`) &&
        sample.includes(`route="${route}"`) &&
        sample.includes(`status="${status}"`),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

const json = (body: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body,
});

describe("http_requests_total's status is the one answered", () => {
  test.each([
    ["a value", "/value", undefined, "/value", 200],
    ["status(201, ...)", "/created", { method: "POST" }, "/created", 201],
    ["a returned Response (a range)", "/range-response", undefined, "/range-response", 206],
    ["set.status (a range)", "/range-set", undefined, "/range-set", 206],
    ["status(204)", "/no-content", undefined, "/no-content", 204],
    ["an unknown path", "/no/such/path", undefined, "unmatched", 404],
    ["a thrown NotFound", "/thrown-404", undefined, "/thrown-404", 404],
    ["a thrown Unauthorized", "/thrown-401", undefined, "/thrown-401", 401],
    ["a validation failure", "/validated", json("{}"), "/validated", 422],
    ["malformed JSON", "/validated", json("{oops"), "/validated", 400],
    [
      "a parser's own problem (too large)",
      "/small-json",
      json(JSON.stringify({ a: "x".repeat(64) })),
      "/small-json",
      413,
    ],
    ["a store away (mapped to 503)", "/store-away", undefined, "/store-away", 503],
    ["a bug", "/bug", undefined, "/bug", 500],
  ] as const)("%s", async (_what, path, init, route, status) => {
    const method = init?.method ?? "GET";
    const before = await counted(method, route, status);
    const answer = await fetch(`${base}${path}`, init);
    await answer.arrayBuffer();
    expect(answer.status).toBe(status);
    // onAfterResponse runs once the answer is on its way: wait for it to be counted
    for (let tries = 0; tries < 50 && (await counted(method, route, status)) === before; tries++) await Bun.sleep(10);
    expect(await counted(method, route, status)).toBe(before + 1);
  });

  test("a request's duration is observed under the same labels", async () => {
    await (await fetch(`${base}/thrown-401`)).arrayBuffer();
    await Bun.sleep(50);
    const text = await (await metrics.app.handle(new Request("http://localhost/metrics"))).text();
    expect(text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/thrown-401",status="401"[^}]*\} [1-9]/);
  });
});

describe("where /metrics is served", () => {
  test("the metrics app answers Prometheus text with the service's label; the app it counts has no /metrics", async () => {
    const scraped = await metrics.app.handle(new Request("http://localhost/metrics"));
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get("content-type")).toContain("text/plain");
    expect(await scraped.text()).toContain('service="metrics-test"');
    const publicAnswer = await fetch(`${base}/metrics`);
    expect(publicAnswer.status).toBe(404);
    expect(publicAnswer.headers.get("content-type")).toBe("application/problem+json");
  });
});

test("a service given the same PORT and METRICS_PORT stops at once with one line naming them (exit 78)", async () => {
  const child = Bun.spawn([process.execPath, "--no-env-file", "notifier.ts"], {
    cwd: `${import.meta.dir}/..`,
    env: { ...process.env, PORT: "39517", METRICS_PORT: "39517" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  expect(code).toBe(78);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stderr).toContain("METRICS_PORT must differ from PORT");
});
