// Errors in words (issue 19): a request that does not fit a route's schema is 422 naming
// each field and saying, in a sentence, what it must be (lib/problem.ts maps Elysia's and
// TypeBox's own failures once, for every route of every service); a problem's `instance`
// is the path the client asked for, also when the gateway passes auth's answer on; and the
// Basic login's 401 asks for Basic credentials. First on a small app of every kind of
// field, then on the gateway and auth of the test's stack (real MariaDB, RabbitMQ, MongoDB).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import { Email, Password } from "../lib/account-models.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { basicAuth, basicLogin } from "./support/client.ts";
import { type Stack, startStack } from "./support/stack.ts";

interface Problem {
  status: number;
  detail: string;
  instance: string;
  errors?: { field: string; message: string }[];
}

/** A route of every kind of field, validated by Elysia as every service's routes are. */
const fields = new Elysia()
  .use(problems(createLogger("errors-test", "silent")))
  .model({ Account: t.Object({ email: Email, password: Password }) })
  .get("/items", ({ query }) => query, {
    query: t.Object({
      limit: t.Integer({ minimum: 1, maximum: 100, default: 20 }),
      sort: t.Optional(t.UnionEnum(["newest", "oldest"])),
    }),
  })
  .get("/items/:n", ({ params }) => params, { params: t.Object({ n: t.Numeric({ minimum: 1 }) }) })
  .post("/accounts", ({ body }) => body, { body: "Account" })
  .post("/settings", ({ body }) => body, {
    body: t.Object({
      volume: t.Number({ minimum: 0, maximum: 1 }),
      channels: t.Union([t.Literal(1), t.Literal(2)]),
      loud: t.Boolean(),
      tags: t.Array(t.String({ minLength: 1, maxLength: 20 }), { maxItems: 3 }),
      owner: t.Object({ name: t.String({ minLength: 1 }) }),
    }),
  })
  .post("/upload", () => "stored", {
    body: t.Object({ file: t.File(), copies: t.Integer({ minimum: 1, maximum: 5 }) }),
  })
  .get("/broken", () => ({ count: "many" }) as never, { response: t.Object({ count: t.Integer() }) });

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});
const form = (entries: Record<string, string | Blob>) => {
  const body = new FormData();
  for (const [name, value] of Object.entries(entries)) body.append(name, value);
  return { method: "POST", body };
};
async function problemOf(response: Response): Promise<Problem> {
  expect(response.headers.get("content-type")).toStartWith("application/problem+json");
  return (await response.json()) as Problem;
}
const ask = (path: string, init?: RequestInit) => fields.handle(new Request(`http://localhost${path}`, init));

describe("validation failures in words, for every kind of field", () => {
  test.each([
    ["a number out of range (query)", "/items?limit=500", undefined, { limit: "must be an integer between 1 and 100" }],
    ["a number out of range, low", "/items?limit=0", undefined, { limit: "must be an integer between 1 and 100" }],
    [
      "a wrong type (text for an integer)",
      "/items?limit=ten",
      undefined,
      { limit: "must be an integer between 1 and 100" },
    ],
    ["a fraction for an integer", "/items?limit=2.5", undefined, { limit: "must be an integer between 1 and 100" }],
    ["a bad enum", "/items?sort=random", undefined, { sort: "must be one of newest, oldest" }],
    ["a path parameter out of range", "/items/0", undefined, { n: "must be a number of 1 or more" }],
    [
      "a bad email format",
      "/accounts",
      json({ email: "ada at example", password: "long enough" }),
      { email: "must be an email address" },
    ],
    ["a missing field", "/accounts", json({ email: "ada@example.com" }), { password: "is required" }],
    ["no body at all", "/accounts", { method: "POST" }, { body: "must be a JSON object with email, password" }],
    [
      "wrong types, a bad union, nested and listed fields",
      "/settings",
      json({ volume: "high", channels: 3, loud: "yes", tags: ["a", ""], owner: { name: "" } }),
      {
        volume: "must be a number between 0 and 1",
        channels: "must be one of 1, 2",
        loud: "must be true or false",
        "tags.1": "must be 1 to 20 characters",
        "owner.name": "must be text, not empty",
      },
    ],
    [
      "too many items",
      "/settings",
      json({ volume: 1, channels: 1, loud: true, tags: ["a", "b", "c", "d"], owner: { name: "x" } }),
      { tags: "must be a list of at most 3 items" },
    ],
    [
      "a form field out of range",
      "/upload",
      form({ file: new Blob(["x"]), copies: "9" }),
      { copies: "must be an integer between 1 and 5" },
    ],
    ["a missing file", "/upload", form({ copies: "2" }), { file: "is required" }],
  ] as const)("%s is 422 naming each field and what it must be", async (_, path, init, expected) => {
    const response = await ask(path, init as RequestInit | undefined);
    expect(response.status).toBe(422);
    const problem = await problemOf(response);
    const errors = Object.fromEntries((problem.errors ?? []).map((error) => [error.field, error.message]));
    expect(errors).toEqual(expected);
    expect(problem.detail).toBe(
      Object.entries(expected)
        .map(([field, message]) => `${field} ${message}`)
        .join("; "),
    );
    expect(problem.instance).toBe(path.split("?")[0]!);
  });

  test("a valid request passes, coerced to its types", async () => {
    expect(await (await ask("/items?limit=7&sort=oldest")).json()).toEqual({ limit: 7, sort: "oldest" });
    expect(await (await ask("/items?sort=newest")).json()).toEqual({ limit: 20, sort: "newest" });
  });

  test("an answer that does not fit its own schema is the service's fault: 500, no details", async () => {
    const response = await ask("/broken");
    expect(response.status).toBe(500);
    expect(await problemOf(response)).toMatchObject({ detail: "something went wrong on our side; it has been logged" });
  });
});

describe("on the gateway and auth", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.stop());
  const gateway = (path: string, init?: RequestInit) => stack.call(path, init);
  const auth = (path: string, init?: RequestInit) => fetch(`${stack.authBase}${path}`, init);

  test("the gateway's job list names `limit` out of range, or not a number", async () => {
    const user = await stack.newUser("errors");
    for (const limit of ["500", "ten"]) {
      const problem = await problemOf(await gateway(`/jobs?limit=${limit}`, { headers: user.headers }));
      expect(problem).toMatchObject({
        status: 422,
        detail: "limit must be an integer between 1 and 100",
        errors: [{ field: "limit", message: "must be an integer between 1 and 100" }],
        instance: "/jobs",
      });
    }
  });

  test("registration's fields in words, at the gateway and at auth alike", async () => {
    const bad = json({ email: "not-an-email", password: "short" });
    for (const [answer, path] of [
      [await gateway("/auth/register", bad), "/auth/register"],
      [await auth("/register", bad), "/register"],
    ] as const) {
      expect(answer.status).toBe(422);
      expect(await problemOf(answer)).toMatchObject({
        detail: "email must be an email address; password must be 8 to 256 characters",
        instance: path,
      });
    }
    const missing = await problemOf(await gateway("/auth/register", json({})));
    expect(missing.detail).toBe("email is required; password is required");
  });

  test("auth's answers passed on by the gateway name the gateway's path", async () => {
    const user = await stack.newUser("errors");
    const taken = await gateway("/auth/register", json({ email: user.email, password: user.password }));
    expect(await problemOf(taken)).toMatchObject({ status: 409, instance: "/auth/register" });
    const unknown = await gateway("/auth/verify", json({ token: "A".repeat(43) }));
    expect(await problemOf(unknown)).toMatchObject({
      status: 422,
      instance: "/auth/verify",
      errors: [{ field: "token" }],
    });
    const login = await gateway("/auth/login", json({ email: user.email, password: "not the password" }));
    expect(await problemOf(login)).toMatchObject({ status: 401, instance: "/auth/login" });
  });

  test("the Basic login's 401 asks for Basic credentials; its overlong email is named", async () => {
    const user = await stack.newUser("errors");
    const none = await gateway("/login", { method: "POST" });
    const wrong = await gateway("/login", basicLogin(user.email, "not the password"));
    for (const answer of [none, wrong]) {
      expect(answer.status).toBe(401);
      expect(answer.headers.get("www-authenticate")).toBe('Basic realm="m3dio", charset="UTF-8"');
      expect(await problemOf(answer)).toMatchObject({ instance: "/login" });
    }
    const long = await gateway("/login", {
      method: "POST",
      headers: { authorization: basicAuth(`${"a".repeat(250)}@example.com`, "whatever pass") },
    });
    expect(await problemOf(long)).toMatchObject({
      status: 422,
      detail: "email must be at most 254 characters",
      errors: [{ field: "email", message: "must be at most 254 characters" }],
    });
    // A bearer route's 401 asks for a bearer token.
    expect((await gateway("/jobs")).headers.get("www-authenticate")).toBe('Bearer realm="m3dio"');
  });
});
