// The OpenAPI document (lib/openapi.ts) is one a program can rely on (issue 19): every
// operation of the gateway documented (summary, tag, its answers, problems as
// application/problem+json, bodies with examples, plain integers), a route added without
// docs caught, and the answers of a real flow (register, log in, upload, the job, the
// list, its live events, the MP3, and errors) fitting the document's own schemas (ajv).
// The gateway in-process on the test's stack (real auth, MariaDB, RabbitMQ, MongoDB), on a
// local port, with a converter in-process for a done job.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Elysia, t } from "elysia";
import { apiDocs } from "../lib/docs.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { basicLogin, type JobView } from "./support/client.ts";
import { waitForJob } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import {
  answerChecker,
  coercedIntegers,
  danglingRefs,
  type Json,
  METHODS,
  missingDocs,
  operationsOf,
} from "./support/openapi.ts";
import { type Stack, startStack } from "./support/stack.ts";

/** Answers that are not problems: readiness says which check failed, in its own document. */
const OWN_KINDS = ["GET /health/ready 503"];

const tmp = mkdtempSync(join(tmpdir(), "m3dio-openapi-test-"));
let stack: Stack;
let document: Json;
let converter: Awaited<ReturnType<typeof startLocalConverter>>;

beforeAll(async () => {
  stack = await startStack();
  document = (await (await stack.call("/docs/json")).json()) as Json;
  const place = { mongo: stack.mongo, mongoUrl: stack.mongoUrl, amqpUrl: stack.vhost.url, tmpDir: tmp, log: stack.log };
  converter = await startLocalConverter(place);
});
afterAll(async () => {
  await converter?.stop();
  await stack?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** What every operation of `document` lacks, by operation; empty when each is complete. */
const incomplete = (doc: Json) =>
  Object.fromEntries(
    operationsOf(doc)
      .map(({ name, operation }) => [name, missingDocs(name, operation, OWN_KINDS)] as const)
      .filter(([, missing]) => missing.length),
  );

/** `METHOD /path` of every route an app serves and documents (hidden ones, like the docs themselves, left out). */
const routesOf = (app: { routes: { method: string; path: string; hooks: Json }[] }) =>
  app.routes
    .filter((route) => !route.hooks?.detail?.hide && METHODS.includes(route.method.toLowerCase() as never))
    .map((route) => `${route.method} ${route.path.replace(/:([^/]+)/g, "{$1}")}`);

describe("the gateway's document", () => {
  test("is valid OpenAPI 3.1, every $ref names a schema in it, and no integer is typed 'string or integer'", async () => {
    const result = await new Validator().validate(structuredClone(document) as never);
    expect(result.errors ?? []).toEqual([]);
    expect(document.openapi).toStartWith("3.1");
    expect(danglingRefs(document)).toEqual([]);
    expect(coercedIntegers(document)).toEqual([]);
    const limit = document.paths["/jobs"].get.parameters.find((parameter: Json) => parameter.name === "limit");
    expect(limit).toMatchObject({
      in: "query",
      required: false,
      schema: { type: "integer", minimum: 1, maximum: 100 },
    });
  });

  test("documents every route the gateway serves, each operation complete", () => {
    const documented = operationsOf(document).map(({ name }) => name);
    expect(routesOf(stack.gateway.app as never).filter((route) => !documented.includes(route))).toEqual([]);
    expect(incomplete(document)).toEqual({});
  });

  test("shared schemas are components: Problem, Job, ConversionOptions; job answers refer to them", () => {
    const { schemas } = document.components;
    for (const name of ["Problem", "Job", "JobPage", "ConversionOptions", "JobDeleted"])
      expect(schemas[name]).toBeObject();
    expect(schemas.Problem.properties.status).toEqual({ type: "integer" });
    expect(schemas.Job.properties.progress).toMatchObject({ type: "integer", minimum: 0, maximum: 100 });
    expect(schemas.JobPage.properties.items.items).toEqual({ $ref: "#/components/schemas/Job" });
    expect(schemas.Job.properties.options.$ref).toBe("#/components/schemas/ConversionOptions");
    const job = document.paths["/jobs/{id}"].get.responses["200"].content["application/json"];
    expect(job.schema).toEqual({ $ref: "#/components/schemas/Job" });
    expect(job.example).toMatchObject({ id: expect.any(String), status: "done" });
  });

  test("register and login take a JSON body with an example; Basic login answers the token as text/plain", () => {
    for (const path of ["/auth/register", "/auth/login"]) {
      const body = document.paths[path].post.requestBody.content["application/json"];
      expect(body.example).toMatchObject({ email: expect.any(String), password: expect.any(String) });
    }
    expect(document.paths["/auth/login"].post.requestBody.required).toBe(false); // HTTP Basic instead
    const basic = document.paths["/login"].post;
    expect(basic.security).toEqual([{ basic: [] }]);
    expect(basic.responses["200"].content["text/plain"].schema.type).toBe("string");
    expect(basic.responses["401"].headers["WWW-Authenticate"].schema.example).toStartWith("Basic ");
  });

  test("the events route names each event and its data schema", () => {
    const stream = document.paths["/jobs/{id}/events"].get.responses["200"].content["text/event-stream"];
    expect(Object.keys(stream["x-events"])).toEqual(["status", "deleted"]);
    expect(stream["x-events"].status.data).toEqual({ $ref: "#/components/schemas/Job" });
    expect(stream["x-events"].deleted.data).toEqual({ $ref: "#/components/schemas/JobDeleted" });
  });

  test("job and webhook routes take a bearer token or an API key; the account routes a token only", () => {
    const { securitySchemes } = document.components;
    expect(Object.keys(securitySchemes).sort()).toEqual(["apiKey", "basic", "bearer"]);
    expect(securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
    for (const { name, path, operation } of operationsOf(document)) {
      if (/^\/(jobs|webhooks)\b/.test(path) && !path.endsWith("/audio"))
        expect([name, operation.security]).toEqual([name, [{ bearer: [] }, { apiKey: [] }]]);
      if (path === "/auth/password" || path === "/auth/account")
        expect([name, operation.security]).toEqual([name, [{ bearer: [] }]]);
    }
  });
});

describe("auth's document (internal: the public API is the gateway's)", () => {
  test("is valid OpenAPI 3.1: each operation with a summary and a tag, its problems application/problem+json, its integers integers", async () => {
    const doc = (await (await stack.auth.app.handle(new Request("http://localhost/docs/json"))).json()) as Json;
    expect((await new Validator().validate(structuredClone(doc) as never)).errors ?? []).toEqual([]);
    expect(danglingRefs(doc)).toEqual([]);
    expect(coercedIntegers(doc)).toEqual([]);
    const structural = (missing: string) => /summary|tag|problem\+json|WWW-Authenticate|Retry-After/.test(missing);
    const lacking = operationsOf(doc)
      .map(({ name, operation }) => [name, missingDocs(name, operation, OWN_KINDS).filter(structural)] as const)
      .filter(([, missing]) => missing.length);
    expect(Object.fromEntries(lacking)).toEqual({});
  });
});

describe("the rules catch what is missing", () => {
  test("a route added without docs fails them, naming what it lacks", async () => {
    const app = new Elysia()
      .use(problems(createLogger("openapi-test", "silent")))
      .use(apiDocs({ title: "rules", description: "a route without docs" }))
      .post("/things", ({ body }) => body, { body: t.Object({ size: t.Integer({ minimum: 1 }) }) })
      .guard({ detail: { security: [{ bearer: [] }] } }, (guarded) =>
        guarded.get("/things/:id", () => ({ id: 1 }), { detail: { tags: ["things"], summary: "One thing" } }),
      );
    const doc = (await (await app.handle(new Request("http://localhost/docs/json"))).json()) as Json;
    expect(incomplete(doc)).toEqual({
      "POST /things": [
        "a summary",
        "a tag",
        "a success answer (2xx)",
        "422 (it validates input)",
        "an example of the request body",
        "an example of the JSON body",
      ],
      "GET /things/{id}": ["a success answer (2xx)"],
    });
    expect(coercedIntegers(doc)).toEqual([]); // its integer, coerced from form fields, is still an integer
  });
});

describe("real answers fit the document", () => {
  let check: ReturnType<typeof answerChecker>;
  let base = "";
  // Over HTTP, as a program sees the answers (the server adds what the app leaves to it, like a file's Content-Length).
  beforeAll(() => {
    check = answerChecker(document);
    stack.gateway.app.listen({ port: 0, hostname: "127.0.0.1" });
    base = `http://127.0.0.1:${stack.gateway.app.server!.port}`;
  });
  afterAll(() => stack.gateway.app.stop(true));
  const call = (path: string, init: RequestInit = {}) => fetch(`${base}${path}`, init);
  const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  /** The answer to `method path` (the document's path, filled with `values`), checked against the document. */
  async function fits(method: string, path: string, init: RequestInit = {}, values: Record<string, string> = {}) {
    const url = path.replace(/\{(\w+)\}/g, (_, name) => values[name]!);
    const [route, query] = url.split("?");
    const template = path.split("?")[0]!;
    const response = await call(url, { ...init, method });
    expect({
      route,
      query,
      status: response.status,
      problems: await check.answer(method, template, response.clone()),
    }).toEqual({
      route,
      query,
      status: response.status,
      problems: [],
    });
    return response;
  }

  test("register, log in (JSON and Basic), upload, the job, the list, its first event, usage, the MP3, and errors", async () => {
    const email = `openapi-${crypto.randomUUID()}@example.com`;
    const password = "a good password";
    expect((await fits("POST", "/auth/register", json({ email, password }))).status).toBe(201);
    const login = await fits("POST", "/auth/login", json({ email, password }));
    const { token } = (await login.json()) as { token: string };
    const headers = { authorization: `Bearer ${token}` };
    expect((await fits("POST", "/login", basicLogin(email, password))).headers.get("content-type")).toStartWith(
      "text/plain",
    );

    const form = new FormData();
    form.append("file", Bun.file(await makeVideo({ seconds: 1 })), "clip.mp4");
    form.append("bitrate", "128");
    const created = await fits("POST", "/jobs", { headers, body: form });
    expect(created.status).toBe(202);
    const job = (await created.json()) as JobView;
    const id = { id: job.id };

    await fits("GET", "/jobs/{id}", { headers }, id);
    await fits("GET", "/jobs?limit=5", { headers });
    await fits("GET", "/account/usage", { headers });
    const events = await call(`/jobs/${job.id}/events`, { headers });
    expect(events.headers.get("content-type")).toStartWith("text/event-stream");
    const first = await firstEvent(events);
    const eventSchema = check.operation("GET", "/jobs/{id}/events").responses["200"].content["text/event-stream"][
      "x-events"
    ][first.event];
    expect(first.event).toBe("status");
    expect(check.mismatches(eventSchema.data, JSON.parse(first.data))).toEqual([]);

    expect((await waitForJob(stack.gateway.jobs, job.id)).status).toBe("done");
    const audio = await fits("GET", "/jobs/{id}/audio", { headers }, id);
    expect([audio.status, audio.headers.get("content-type")]).toEqual([200, "audio/mpeg"]);
    const partial = await fits("GET", "/jobs/{id}/audio", { headers: { ...headers, range: "bytes=0-99" } }, id);
    expect([partial.status, partial.headers.get("content-range")]).toEqual([
      206,
      expect.stringMatching(/^bytes 0-99\//),
    ]);
    await fits("POST", "/jobs/{id}/share", { headers }, id);

    // Errors: each a problem the document describes, naming the gateway's own path.
    const unknown = { id: "6740c2a1f0e4b3a1c2d3e4f5" };
    expect((await fits("GET", "/jobs/{id}", { headers }, unknown)).status).toBe(404);
    const tooMany = await fits("GET", "/jobs?limit=500", { headers });
    expect(await tooMany.json()).toMatchObject({
      status: 422,
      detail: "limit must be an integer between 1 and 100",
      errors: [{ field: "limit", message: "must be an integer between 1 and 100" }],
    });
    expect((await fits("GET", "/jobs")).status).toBe(401);
    expect((await fits("POST", "/auth/register", json({ email: "not an address", password }))).status).toBe(422);
    const taken = await fits("POST", "/auth/register", json({ email, password }));
    expect(await taken.json()).toMatchObject({ status: 409, instance: "/auth/register" });
    const wrong = await fits("POST", "/login", basicLogin(email, "not the password"));
    expect([wrong.status, wrong.headers.get("www-authenticate")]).toEqual([
      401,
      'Basic realm="m3dio", charset="UTF-8"',
    ]);
    expect(await wrong.json()).toMatchObject({ instance: "/login" });
    expect((await fits("DELETE", "/jobs/{id}", { headers }, id)).status).toBe(204);
  }, 60_000);

  // Elysia writes `additionalProperties: false` into a registered model when a route taking or answering it first
  // runs; the requests above ran such routes, and a document read now must not show it (nor repeat Job in JobPage).
  test("a gateway made after those requests has the same document", async () => {
    const later = stack.gatewayWith();
    const again = (await (await later.app.handle(new Request("http://localhost/docs/json"))).json()) as Json;
    expect(again).toEqual(document);
  });
});

/** The stream's first event, read as it arrives; the stream is then closed. */
async function firstEvent(response: Response): Promise<{ event: string; data: string }> {
  const reader = (response.body as ReadableStream<Uint8Array | string>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!text.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += typeof value === "string" ? value : decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel();
  }
  const lines = text.slice(0, text.indexOf("\n\n")).split("\n");
  const field = (name: string) =>
    lines
      .filter((line) => line.startsWith(`${name}:`))
      .map((line) => line.slice(name.length + 1).trimStart())
      .join("\n");
  return { event: field("event") || "message", data: field("data") };
}
