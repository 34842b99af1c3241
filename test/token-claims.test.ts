// Issue 15, finding 10 (part): the gateway checks a token's claims, not only its
// signature. Every token here is signed with auth's own key, so only its claims can be
// wrong; the gateway's bearer check (gateway/bearer.ts) answers 401 for each, as for a
// bad signature.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import * as jose from "jose";
import { createAuth } from "../auth.ts";
import { bearer, jwksVerifier } from "../gateway/bearer.ts";
import { createLogger } from "../lib/log.ts";
import { problems } from "../lib/problem.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/tokens.ts";
import { authTestConfig } from "./support/auth.ts";
import { createTestDatabase, type TestDatabase } from "./support/mysql.ts";
import { createTestVhost, type TestVhost } from "./support/rabbit.ts";

let database: TestDatabase;
let vhost: TestVhost;
let auth: Awaited<ReturnType<typeof createAuth>>;
/** GET /me behind the gateway's bearer check, answering the caller. */
let me: (token: string) => Promise<Response>;

beforeAll(async () => {
  database = await createTestDatabase();
  vhost = await createTestVhost(); // auth queues verification emails: in this test's own vhost
  auth = await createAuth({ config: authTestConfig(database.url, { AMQP_URL: vhost.url }) });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const verifier = jwksVerifier(`http://127.0.0.1:${auth.app.server!.port}/.well-known/jwks.json`);
  const app = new Elysia()
    .use(problems(createLogger("gateway", "silent")))
    .use(bearer(verifier))
    .get("/me", ({ user }) => user, { auth: true });
  me = (token) => app.handle(new Request("http://gateway/me", { headers: { authorization: `Bearer ${token}` } }));
});
afterAll(async () => {
  await auth?.app.stop(true);
  await auth?.close();
  await database?.drop();
  await vhost?.drop();
});

const post = (path: string, body: unknown) =>
  auth.app.handle(
    new Request(`http://auth${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  );

describe("the gateway checks a token's claims, not only its signature (finding 10)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  /** A token signed with auth's own key: only its claims can be wrong. */
  function signed(claims: Record<string, unknown>): Promise<string> {
    const base = {
      sub: "1",
      email: "a@example.com",
      iss: TOKEN_ISSUER,
      aud: TOKEN_AUDIENCE,
      iat: now(),
      exp: now() + 600,
    };
    const payload = Object.fromEntries(
      Object.entries({ ...base, ...claims }).filter(([, value]) => value !== undefined),
    );
    return new jose.SignJWT(payload)
      .setProtectedHeader({ alg: auth.signingKey.alg, kid: auth.signingKey.kid })
      .sign(auth.signingKey.privateKey);
  }

  test("auth's tokens name auth as issuer and the gateway as audience, and the gateway accepts them", async () => {
    const email = `claims.${Date.now()}@example.com`;
    await post("/register", { email, password: "a good password" });
    const { token } = (await (await post("/login", { email, password: "a good password" })).json()) as {
      token: string;
    };
    const claims = jose.decodeJwt(token);
    expect([claims.iss, claims.aud]).toEqual([TOKEN_ISSUER, TOKEN_AUDIENCE]);
    const answer = await me(token);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ id: claims.sub, email, emailVerified: false });
    expect((await me(await signed({}))).status).toBe(200); // the forger below changes one claim of this
  });

  test.each([
    ["an iat in the future", { iat: now() + 3600, exp: now() + 7200 }],
    ["no iat", { iat: undefined }],
    ["an iat older than any token lives", { iat: now() - 8 * 24 * 3600 }],
    ["no iss", { iss: undefined }],
    ["another issuer", { iss: "someone-else" }],
    ["no aud", { aud: undefined }],
    ["another audience", { aud: "another-service" }],
    ["a numeric sub", { sub: 1 }],
    ["an object for sub", { sub: { $ne: null } }],
    ["a sub that is no user id", { sub: "abc" }],
    ["a sub of 0", { sub: "0" }],
    ["no sub", { sub: undefined }],
    ["no email", { email: undefined }],
    ["a numeric email", { email: 42 }],
  ])("a token with %s is 401", async (_, claims) => {
    const answer = await me(await signed(claims));
    expect(answer.status).toBe(401);
    expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
  });
});
