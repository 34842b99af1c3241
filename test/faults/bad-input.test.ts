// Bad input of every kind gets a clear 4xx problem, never a 500, and leaves nothing behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parse as parseDisposition } from "content-disposition";
import * as jose from "jose";
import { createConnection } from "mysql2/promise";
import { LOCKOUT } from "../../auth.ts";
import { mp3Filename } from "../../lib/filenames.ts";
import { basicAuth } from "../support/client.ts";
import { makeVideo } from "../support/media.ts";
import { type Stack, startStack } from "../support/stack.ts";

let stack: Stack;
let video: Blob;
beforeAll(async () => {
  stack = await startStack();
  video = Bun.file(await makeVideo({ seconds: 1 }));
});
afterAll(() => stack?.stop());

const stored = async () => ({
  files: await stack.mongo.db.collection("videos.files").countDocuments(),
  chunks: await stack.mongo.db.collection("videos.chunks").countDocuments(),
  jobs: await stack.mongo.db.collection("jobs").countDocuments(),
});

async function expectProblem(response: Response, status: number, detail?: string | RegExp) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toStartWith("application/problem+json");
  const body = (await response.json()) as { status: number; title: string; detail: string };
  expect(body.status).toBe(status);
  if (detail) expect(body.detail).toMatch(detail);
}

describe("tokens", () => {
  test("missing, malformed, expired, tampered, alg:none and foreign-key tokens are all 401", async () => {
    const user = await stack.newUser();
    const [header, payload, signature] = user.token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const key = stack.auth.signingKey;
    const expired = await new jose.SignJWT({ email: claims.email })
      .setProtectedHeader({ alg: key.alg, kid: key.kid })
      .setSubject(claims.sub)
      .setIssuedAt(claims.iat - 7200)
      .setExpirationTime(claims.iat - 3600)
      .sign(key.privateKey);
    const foreign = await new jose.SignJWT({ email: claims.email })
      .setProtectedHeader({ alg: "EdDSA", kid: key.kid })
      .setSubject(claims.sub)
      .setExpirationTime("1h")
      .sign((await jose.generateKeyPair("EdDSA")).privateKey);
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: "999999" })).toString("base64url")}.${signature}`;
    const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${payload}.`;
    const cases = {
      missing: undefined,
      malformed: "Bearer abc.def",
      garbage: "Bearer !!!.@@@.###",
      expired,
      tampered,
      none,
      foreign,
      basic: basicAuth(user.email, user.password),
    };
    for (const [name, value] of Object.entries(cases)) {
      const authorization =
        value && !value.startsWith("Bearer") && !value.startsWith("Basic") ? `Bearer ${value}` : value;
      const response = await stack.call("/jobs", authorization ? { headers: { authorization } } : {});
      expect({ name, status: response.status }).toEqual({ name, status: 401 });
    }
  });
});

describe("uploads", () => {
  test("an empty body or an empty file is refused as empty, and nothing is stored", async () => {
    const user = await stack.newUser();
    const before = await stored();
    const raw = await stack.call("/jobs", {
      method: "POST",
      headers: { ...user.headers, "content-type": "video/mp4" },
      body: new Uint8Array(0),
    });
    await expectProblem(raw, raw.status === 422 ? 422 : 415, /no body|empty/);
    const data = new FormData();
    data.append("file", new Blob([]), "empty.mp4");
    await expectProblem(
      await stack.call("/jobs", { method: "POST", headers: user.headers, body: data }),
      415,
      /the file is empty/,
    );
    expect(await stored()).toEqual(before);
  });

  test("over the limit, wrong type, no `file`, two files and a garbage boundary: clear 4xx, nothing stored", async () => {
    const user = await stack.newUser();
    const small = stack.gatewayWith({ MAX_UPLOAD_BYTES: String(video.size - 1) });
    const before = await stored();
    const form = (...files: [string, Blob, string][]) => {
      const data = new FormData();
      for (const [field, blob, name] of files) data.append(field, blob, name);
      return data;
    };
    const post = (body: BodyInit, headers: Record<string, string> = {}, app = stack.gateway.app) =>
      stack.call("/jobs", { method: "POST", headers: { ...user.headers, ...headers }, body }, app);

    await expectProblem(await post(form(["file", video, "a.mp4"]), {}, small.app), 413, /larger than/);
    await expectProblem(await post(form(["file", new Blob(["%PDF-1.7\n".repeat(600)]), "a.mp4"])), 415, /not a video/);
    await expectProblem(await post(form(["upload", video, "a.mp4"])), 422, /'file'/);
    await expectProblem(await post(form(["file", video, "a.mp4"], ["file", video, "b.mp4"])), 422, /exactly one file/);
    await expectProblem(
      await post("--nonsense\r\nnot a part\r\n", { "content-type": "multipart/form-data; boundary=XYZ" }),
      422,
    );
    await expectProblem(await post("whatever", { "content-type": "multipart/form-data" }), 422);
    await expectProblem(await post(JSON.stringify({ file: "x" }), { "content-type": "application/xml" }), 415);
    expect(await stored()).toEqual(before);
  });

  test("a filename with path separators, CRLF and 300 characters is stored cleaned (quotes kept), and the download header stays safe", async () => {
    const user = await stack.newUser();
    const nasty = `..\\..//etc/"pass"\r\nSet-Cookie: a=b; ${"ü".repeat(300)}.mp4`;
    const data = new FormData();
    data.append("file", video, nasty);
    const response = await stack.call("/jobs", { method: "POST", headers: user.headers, body: data });
    expect(response.status).toBe(202);
    const job = (await response.json()) as { id: string; source: { filename: string } };
    expect(job.source.filename).not.toMatch(/[\\/\r\n]/);
    expect(job.source.filename).toStartWith('"pass"Set-Cookie: a=b; ü'); // as typed, but one line and no path
    expect(job.source.filename.length).toBeLessThanOrEqual(200);
    // make it done with a tiny MP3, as the converter would
    const { ObjectId } = await import("mongodb");
    const { Readable } = await import("node:stream");
    const id = new ObjectId(job.id);
    const mp3 = await stack.gateway.files.upload("mp3s", Readable.from([Buffer.from([0xff, 0xfb, 0x90, 0x00])]), {
      owner: "x",
      filename: "x.mp3",
      contentType: "audio/mpeg",
    });
    await stack.gateway.jobs.startConverting(id);
    await stack.gateway.jobs.markDone(id, mp3.id, { bytes: 4, durationSec: 0.1 });
    const download = await stack.call(`/jobs/${job.id}/audio`, { headers: user.headers });
    expect(download.status).toBe(200);
    const disposition = download.headers.get("content-disposition")!;
    expect(disposition).not.toMatch(/[\r\n]/);
    expect(disposition).toMatch(/^attachment; filename="(?:[^"\\]|\\")*\.mp3"; filename\*=UTF-8''[^"\s]+\.mp3$/);
    expect(parseDisposition(disposition).parameters.filename).toBe(mp3Filename(job.source.filename));
    expect(download.headers.get("set-cookie")).toBeNull();
  });
});

describe("ids", () => {
  test("malformed ids and other users' ids are 404, never 500", async () => {
    const owner = await stack.newUser();
    const stranger = await stack.newUser();
    const data = new FormData();
    data.append("file", video, "mine.mp4");
    const { id } = (await (
      await stack.call("/jobs", { method: "POST", headers: owner.headers, body: data })
    ).json()) as { id: string };
    const paths = [
      "/jobs/123",
      "/jobs/zzzzzzzzzzzzzzzzzzzzzzzz",
      "/jobs/%00",
      `/jobs/${id}x`,
      `/jobs/${id.toUpperCase()}`.replace(id.toUpperCase(), "0".repeat(24)),
      `/jobs/${id}`,
      `/jobs/${id}/audio`,
      `/jobs/${id}/events`,
      "/download?fid=nope",
      "/download?fid=%24where",
    ];
    for (const path of paths) {
      const response = await stack.call(path, { headers: stranger.headers });
      expect({ path, status: response.status }).toEqual({ path, status: 404 });
    }
    expect((await stack.call(`/jobs/${id}`, { method: "DELETE", headers: stranger.headers })).status).toBe(404);
    expect((await stack.call(`/jobs/${id}`, { headers: owner.headers })).status).toBe(200);
  });
});

describe("JSON", () => {
  test("invalid JSON is 400, wrong types 422, a huge body 413, another type 415", async () => {
    const post = (body: BodyInit, type = "application/json") =>
      stack.call("/auth/register", { method: "POST", headers: { "content-type": type }, body });
    await expectProblem(await post("{oops"), 400, /not valid JSON/);
    await expectProblem(await post(JSON.stringify({ email: 42, password: ["x"] })), 422, /email/);
    await expectProblem(
      await post(JSON.stringify({ email: "a@example.com", password: "x".repeat(10 * 1024 * 1024) })),
      413,
    );
    await expectProblem(await post("email=a@example.com", "application/x-www-form-urlencoded"), 415);
    const login = await stack.call("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "[1,2",
    });
    await expectProblem(login, 400);
  });

  test("emails with SQL in them are stored and used as plain data; HTML in them is refused as not an email", async () => {
    const sqlish = `o'reilly'--${Date.now()}@example.com`;
    expect((await stack.postJson("/auth/register", { email: sqlish, password: "a good password" })).status).toBe(201);
    const login = await stack.postJson("/auth/login", { email: sqlish, password: "a good password" });
    expect(login.status).toBe(200);
    const { token } = (await login.json()) as { token: string };
    expect(jose.decodeJwt(token).email).toBe(sqlish);
    const connection = await createConnection({ uri: stack.database.url });
    const [rows] = await connection.query("SELECT COUNT(*) AS n FROM users");
    await connection.end();
    expect((rows as { n: number }[])[0]!.n).toBeGreaterThan(0); // the table is still there
    for (const email of ["<script>alert(1)</script>@example.com", '"><img src=x onerror=alert(1)>@example.com']) {
      await expectProblem(await stack.postJson("/auth/register", { email, password: "a good password" }), 422, /email/);
    }
  });
});

describe("brute force", () => {
  test("a thousand wrong passwords end in 429; the right user logs in again after the window", async () => {
    const user = await stack.newUser();
    const statuses = new Map<number, number>();
    const wrong = { authorization: basicAuth(user.email, "not-the-password") };
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => stack.call("/auth/login", { method: "POST", headers: wrong })),
      );
      for (const response of batch) statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
    // Attempts are counted before the (slow) password check, so even guesses sent 50 at
    // a time get at most maxFailures checks: the rest are refused unchecked.
    expect([...statuses.keys()].filter((status) => status !== 401 && status !== 429)).toEqual([]);
    expect(statuses.get(401) ?? 0).toBeLessThanOrEqual(LOCKOUT.maxFailures);
    expect(statuses.get(429)).toBeGreaterThanOrEqual(1000 - LOCKOUT.maxFailures);
    const locked = await stack.postJson("/auth/login", { email: user.email, password: user.password });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    // the window passes (moved in the database rather than waited for)
    const connection = await createConnection({ uri: stack.database.url });
    await connection.query(
      "UPDATE login_attempts SET attempted_at = attempted_at - INTERVAL 16 MINUTE WHERE email = ?",
      [user.email],
    );
    await connection.end();
    expect((await stack.postJson("/auth/login", { email: user.email, password: user.password })).status).toBe(200);
  }, 120_000);
});
