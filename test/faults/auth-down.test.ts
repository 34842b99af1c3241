// Faults: auth is down (killed outright). Logging in and registering answer 503
// problem+json; everyone already holding a valid token carries on, because the gateway
// verifies tokens itself with auth's public keys, fetched before and held; bad tokens
// are still refused. Held keys also outlive their refresh time while auth is away.
import { beforeAll, describe, expect, test } from "bun:test";
import * as jose from "jose";
import { jwksVerifier, KeysUnavailable } from "../../gateway/bearer.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../../lib/tokens.ts";
import { basicLogin, type GatewayClient } from "../support/client.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

let system: FaultSystem;
let video: Uint8Array;
let http: GatewayClient;

beforeAll(async () => {
  ({ system, video, http } = await faultSetup({ videoSeconds: 2 }));
}, 90_000);

async function expectProblem(answer: Response, status: number, detail: RegExp) {
  expect({ status: answer.status, type: answer.headers.get("content-type") }).toEqual({
    status,
    type: "application/problem+json",
  });
  const body = (await answer.json()) as { status: number; detail: string };
  expect(body.status).toBe(status);
  expect(body.detail).toMatch(detail);
}

describe("auth down", () => {
  test("logins get 503 problem+json; valid tokens keep working end to end; bad tokens are still 401", async () => {
    const user = await http.newUser("authdown");
    expect((await http.call("/jobs", { headers: user.headers })).status).toBe(200);
    expect(await system.kill("auth", "SIGKILL")).toBe(128 + 9);

    const json = { "content-type": "application/json" };
    const credentials = JSON.stringify({ email: user.email, password: user.password });
    await expectProblem(
      await http.call("/auth/login", { method: "POST", headers: json, body: credentials }),
      503,
      /login service/,
    );
    await expectProblem(await http.call("/login", basicLogin(user.email, user.password)), 503, /login service/);
    await expectProblem(
      await http.call("/auth/register", {
        method: "POST",
        headers: json,
        body: JSON.stringify({ email: `new-${Date.now()}@example.com`, password: "a long enough password" }),
      }),
      503,
      /login service/,
    );

    // The gateway stays ready (auth is not needed to serve what tokens allow) and a token holder's whole flow works.
    expect((await http.call("/health/ready")).status).toBe(200);
    const job = await http.upload(user, video, "while-auth-is-down.mp4");
    expect(await http.finished(user, job.id, 30_000)).toMatchObject({ status: "done" });
    const audio = await http.call(`/jobs/${job.id}/audio`, { headers: user.headers });
    expect(audio.status).toBe(200);
    expect(audio.headers.get("content-type")).toBe("audio/mpeg");
    expect((await http.call("/jobs", { headers: user.headers })).status).toBe(200);

    // Verification is still real: a tampered token is refused.
    const [header, payload, signature] = user.token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: "424242" })).toString("base64url")}.${signature}`;
    expect((await http.call("/jobs", { headers: { authorization: `Bearer ${tampered}` } })).status).toBe(401);

    // auth back: logins work again, with the same keys.
    await system.start("auth");
    expect(await http.token(user.email, user.password)).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  }, 60_000);

  test("held keys keep verifying when a refresh fails; with no keys held a token is 'cannot check now', not 'invalid'", async () => {
    const { privateKey, publicKey } = await jose.generateKeyPair("EdDSA", { extractable: true });
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" };
    // auth's JWKS, until it goes away: then every request for the keys fails (and is counted).
    let away = false;
    let failedFetches = 0;
    const issuer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch() {
        if (!away) return Response.json({ keys: [jwk] });
        failedFetches++;
        return new Response("auth is down", { status: 503 });
      },
    });
    const sign = (kid: string) =>
      new jose.SignJWT({ email: "a@example.com" })
        .setProtectedHeader({ alg: "EdDSA", kid })
        .setSubject("1")
        .setIssuer(TOKEN_ISSUER) // the claims auth's tokens carry (lib/tokens.ts)
        .setAudience(TOKEN_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("1h")
        .sign(privateKey);
    const verifier = jwksVerifier(`http://127.0.0.1:${issuer.port}/.well-known/jwks.json`, { refreshMs: 50 });
    try {
      const token = await sign("k1");
      expect(await verifier.verify(token)).toEqual({ id: "1", email: "a@example.com", emailVerified: false });
      away = true; // auth goes away
      // Past the refresh time a use of the keys tries a refresh, which fails: the held key serves.
      // The token is used until auth has refused three refreshes, and verifies every time.
      const deadline = Date.now() + 10_000;
      while (failedFetches < 3 && Date.now() < deadline) {
        expect(await verifier.verify(token)).toEqual({ id: "1", email: "a@example.com", emailVerified: false });
        await Bun.sleep(10); // the next use a moment later: refreshes are tried once per refresh time
      }
      expect(failedFetches).toBeGreaterThanOrEqual(3); // refreshes were tried, and failed
      expect(await verifier.verify(token)).toEqual({ id: "1", email: "a@example.com", emailVerified: false });
      await issuer.stop(true); // and now auth is gone altogether
      // Keys never fetched (a gateway started while auth is down): the token cannot be checked (503 at
      // the gateway), which is not the same as invalid (401, "log in again", which would fail too).
      const newcomer = jwksVerifier(`http://127.0.0.1:${issuer.port}/.well-known/jwks.json`);
      expect(await newcomer.verify(token).catch((error) => error)).toBeInstanceOf(KeysUnavailable);
    } finally {
      await issuer.stop(true);
    }
  });
});
