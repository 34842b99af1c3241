// The command-line client (cli/m3dio.ts) as a person or a script runs it: a process of its
// own, with its config in a temp HOME, against the four services as processes
// (test/support/system.ts). What is checked is what its user gets: exit codes, what it
// prints on stdout and stderr, the files it writes (probed with ffprobe), and what the
// server then holds. The tests run in order as one user's session: the first logs in.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { StoredConfig } from "../cli/config.ts";
import { EXIT } from "../cli/errors.ts";
import type { ProblemBody } from "../lib/problem.ts";
import { type GatewayClient, gatewayClient, type JobView, type User } from "./support/client.ts";
import { makeVideo, run } from "./support/media.ts";
import { freePort, parseLine } from "./support/service-process.ts";
import { type System, startSystem } from "./support/system.ts";

const ROOT = resolve(import.meta.dir, "..");
const CLI = join(ROOT, "cli", "m3dio.ts");

let system: System;
let http: GatewayClient;
let user: User;
let video: string;
let silentVideo: string;
const work = mkdtempSync(join(tmpdir(), "m3dio-cli-"));
const home = join(work, "home");
const configFile = join(home, ".config", "m3dio", "config.json");

beforeAll(async () => {
  const videos = Promise.all([makeVideo({ seconds: 3 }), makeVideo({ seconds: 2, audio: false })]);
  videos.catch(() => {}); // awaited below, once the system is held for afterAll to stop
  // Links and webhooks may reach this test's server on 127.0.0.1, which the address rules otherwise shut.
  const allowLoopback = { URL_ALLOW_HOSTS: "127.0.0.1" };
  system = await startSystem({ env: { gateway: allowLoopback, converter: allowLoopback, notifier: allowLoopback } });
  [video, silentVideo] = await videos;
  http = gatewayClient(system.gatewayUrl, { inbox: system.resend });
  user = await http.newUser("cli");
  mkdirSync(home, { recursive: true });
}, 90_000);

afterAll(async () => {
  try {
    receiver.stop(true);
    await system?.stop();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 30_000);

/** A video site and a webhook receiver: GET /media/<name> is the test video; every POST is kept, answered 200. */
const posted: { path: string; body: string }[] = [];
const receiver = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (request.method === "GET" && path.startsWith("/media/")) return new Response(Bun.file(video));
    posted.push({ path, body: await request.text() });
    return new Response("thanks");
  },
});

interface Ran {
  code: number;
  stdout: Uint8Array;
  out: string;
  err: string;
}

/**
 * Runs `m3dio <args>` as its own process (asynchronously: the MongoDB stand-in lives in this
 * process and must keep answering), with HOME in the temp dir and none of the test's own
 * M3DIO_ variables; stdin is not a terminal, so no prompt and no progress bar.
 */
async function m3dio(args: string[], { cwd = work, env = {} as Record<string, string> } = {}): Promise<Ran> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("M3DIO_") && name !== "XDG_CONFIG_HOME"),
  );
  const child = Bun.spawn([process.execPath, CLI, ...args], {
    cwd,
    env: { ...inherited, HOME: home, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, err, code] = await Promise.all([
    new Response(child.stdout).bytes(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, out: new TextDecoder().decode(stdout), err };
}

const storedConfig = () => JSON.parse(readFileSync(configFile, "utf8")) as StoredConfig;

interface Probed {
  format: { format_name: string; duration: string; tags?: Record<string, string> };
  streams: { codec_type: string; codec_name: string; bit_rate?: string }[];
}
async function ffprobe(path: string): Promise<Probed> {
  return JSON.parse(
    await run(["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", path]),
  ) as Probed;
}
const audioOf = (probed: Probed) => probed.streams.find((stream) => stream.codec_type === "audio")!;

/** How many live event streams (GET /jobs/:id/events) the gateway has answered 200, by its metrics. */
async function eventStreamsAnswered(): Promise<number> {
  const text = await (await fetch(`${system.service("gateway").metricsUrl}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (row) =>
        row.startsWith("http_requests_total{") &&
        row.includes('route="/jobs/:id/events"') &&
        row.includes('status="200"'),
    );
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

/** What the gateway itself answers `route` with `init`, as a problem document (to compare with what the CLI printed). */
async function problemFor(route: string, init: RequestInit): Promise<ProblemBody> {
  const answer = await http.call(route, { ...init, headers: { ...user.headers, ...init.headers } });
  expect(answer.ok).toBe(false);
  return (await answer.json()) as ProblemBody;
}

describe("m3dio, the command-line client", () => {
  test("login with flags keeps a refresh token (never the password) in ~/.config/m3dio, readable by its owner only", async () => {
    const ran = await m3dio([
      "login",
      "--server",
      system.gatewayUrl,
      "--email",
      user.email,
      "--password",
      user.password,
    ]);
    expect(ran).toMatchObject({ code: EXIT.ok, out: "" });
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, ".config", "m3dio")).mode & 0o777).toBe(0o700);
    const config = storedConfig();
    expect(config).toMatchObject({ server: system.gatewayUrl, email: user.email });
    expect(config.refreshToken).toMatch(/^[\w-]{43}$/);
    expect(readFileSync(configFile, "utf8")).not.toContain(user.password);
  });

  test("convert uploads a video with options, follows it and saves the MP3 under the video's name", async () => {
    const folder = mkdtempSync(join(work, "convert-"));
    writeFileSync(join(folder, "trip.mp4"), readFileSync(video));
    const streamsBefore = await eventStreamsAnswered();
    const ran = await m3dio(["convert", "trip.mp4", "--bitrate", "128", "--title", "Road Trip", "--channels", "1"], {
      cwd: folder,
    });
    expect({ code: ran.code, err: ran.err }).toMatchObject({ code: EXIT.ok });
    expect(ran.out).toBe("trip.mp3\n"); // the saved file's path, for a script to use
    expect(await eventStreamsAnswered()).toBeGreaterThan(streamsBefore); // followed live, not by polling
    const probed = await ffprobe(join(folder, "trip.mp3"));
    expect(probed.format.format_name).toBe("mp3");
    expect(Number(audioOf(probed).bit_rate)).toBe(128_000);
    expect(probed.format.tags?.title).toBe("Road Trip");
    expect(Number(probed.format.duration)).toBeCloseTo(3, 0);

    // The server holds the job as the CLI made it: an upload named after the file, with the options.
    const [job] = (await (await http.call("/jobs?limit=1", { headers: user.headers })).json()).items as JobView[];
    expect(job).toMatchObject({
      status: "done",
      source: { kind: "upload", filename: "trip.mp4", bytes: statSync(video).size },
      options: { bitrate: 128, title: "Road Trip", channels: 1 },
    });

    // A second conversion of the same file does not overwrite the first MP3.
    const again = await m3dio(["convert", "trip.mp4", "-q"], { cwd: folder });
    expect(again).toMatchObject({ code: EXIT.ok, out: "trip (2).mp3\n", err: "" });
  }, 60_000);

  test("convert -o - writes the MP3 to stdout and nothing else; --json describes the job", async () => {
    const ran = await m3dio(["convert", video, "-o", "-", "--quality", "5"]);
    expect({ code: ran.code, err: ran.err }).toMatchObject({ code: EXIT.ok });
    const path = join(work, "stdout.mp3");
    writeFileSync(path, ran.stdout);
    const probed = await ffprobe(path);
    expect(probed.format.format_name).toBe("mp3");
    expect(Number(probed.format.duration)).toBeCloseTo(3, 0);

    const json = await m3dio(["convert", video, "--json", "-q", "-o", join(work, "json.mp3")]);
    expect(json.code).toBe(EXIT.ok);
    const { file, job } = JSON.parse(json.out) as { file: string; job: JobView };
    expect(file).toBe(join(work, "json.mp3"));
    expect(job).toMatchObject({ status: "done", progress: 100 });
    expect(job.audio!.bytes).toBe(statSync(file).size);
  }, 60_000);

  test("convert <link> hands the link and the options to the server, which downloads it", async () => {
    const link = `http://127.0.0.1:${receiver.port}/media/concert.mp4`;
    const saved = join(work, "link.mp3");
    const ran = await m3dio(["convert", link, "--end", "0:02", "--artist", "The Band", "-o", saved, "--json", "-q"]);
    expect({ code: ran.code, err: ran.err }).toEqual({ code: EXIT.ok, err: "" });
    const { job } = JSON.parse(ran.out) as { job: JobView };
    expect(job).toMatchObject({ source: { kind: "url", url: link }, options: { end: 2, artist: "The Band" } });
    const probed = await ffprobe(saved);
    expect(probed.format.tags?.artist).toBe("The Band");
    expect(Number(probed.format.duration)).toBeCloseTo(2, 0);
  }, 60_000);

  test("jobs --json lists the jobs as the server views them; download saves one, delete removes it", async () => {
    const listed = await m3dio(["jobs", "--json"]);
    expect(listed.code).toBe(EXIT.ok);
    const jobs = JSON.parse(listed.out) as JobView[];
    const server = (await (await http.call("/jobs?limit=100", { headers: user.headers })).json()).items as JobView[];
    expect(jobs.map((job) => job.id)).toEqual(server.map((job) => job.id));
    expect(jobs.length).toBeGreaterThanOrEqual(5);
    expect(jobs.every((job) => job.status === "done")).toBe(true);

    const table = await m3dio(["jobs", "--limit", "2"]);
    expect(table.code).toBe(EXIT.ok);
    expect(table.out.trim().split("\n")).toHaveLength(3); // a header and two jobs
    expect(table.out).toContain(jobs[0]!.id);

    const [newest] = jobs;
    const saved = join(work, "downloaded.mp3");
    const downloaded = await m3dio(["download", newest!.id, "-o", saved]);
    expect(downloaded).toMatchObject({ code: EXIT.ok, out: `${saved}\n` });
    const audio = await http.call(`/jobs/${newest!.id}/audio`, { headers: user.headers });
    expect(readFileSync(saved)).toEqual(Buffer.from(await audio.arrayBuffer()));

    expect(await m3dio(["delete", newest!.id])).toMatchObject({ code: EXIT.ok });
    expect((await http.call(`/jobs/${newest!.id}`, { headers: user.headers })).status).toBe(404);
    // Gone: the server's refusal is exit 3, with its reason.
    const refused = await m3dio(["download", newest!.id]);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.err).toContain((await problemFor(`/jobs/${newest!.id}`, {})).detail!);
  }, 60_000);

  test("a file that is not a video is refused: exit 3 with the server's reason; bad options name their fields", async () => {
    const text = join(work, "notes.txt");
    writeFileSync(text, "these are not the frames you are looking for\n".repeat(20));
    const ran = await m3dio(["convert", text]);
    expect(ran.code).toBe(EXIT.refused);
    const problem = await problemFor("/jobs?filename=notes.txt", {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: readFileSync(text),
    });
    expect(problem.status).toBe(415);
    expect(ran.err).toContain(problem.detail!);

    const options = await m3dio(["convert", video, "--quality", "12", "--end", "soon"]);
    expect(options.code).toBe(EXIT.refused);
    expect(options.err).toMatch(/^ {2}quality: /m);
    expect(options.err).toMatch(/^ {2}end: /m);
    // A value the client knows is wrong is a usage error before anything is sent.
    expect((await m3dio(["convert", video, "--bitrate", "100"])).code).toBe(EXIT.usage);
    expect((await m3dio(["convert", join(work, "no-such-file.mp4")])).code).toBe(EXIT.usage);
  }, 60_000);

  test("a conversion that fails is exit 5 with the job's error", async () => {
    const ran = await m3dio(["convert", silentVideo]);
    expect(ran.code).toBe(EXIT.failed);
    const [job] = (await (await http.call("/jobs?limit=1", { headers: user.headers })).json()).items as JobView[];
    expect(job!.status).toBe("failed");
    expect(ran.err).toContain(job!.error!);
    expect(ran.out).toBe("");
  }, 60_000);

  test("an expired access token is renewed with the refresh token, once for runs at once, and the rotated one is kept", async () => {
    const before = storedConfig();
    const auth = system.service("auth");
    const seenBefore = auth.logs.length;
    writeFileSync(configFile, JSON.stringify({ ...before, accessExpiresAt: new Date(0).toISOString() }));
    // Six runs at once: one trades the refresh token, the others wait for its lock and take the new access
    // token (a refresh token spent twice would end the session).
    const runs = await Promise.all(Array.from({ length: 6 }, () => m3dio(["jobs", "--json"])));
    expect(runs.map((ran) => ran.code)).toEqual(runs.map(() => EXIT.ok));
    const sessionEvents = () =>
      auth.logs
        .slice(seenBefore)
        .map(parseLine)
        .filter((entry) => entry.userId === user.id && String(entry.event).startsWith("session."))
        .map((entry) => entry.event);
    await system.waitForLog(auth, (entry) => entry.event === "session.refreshed" && entry.userId === user.id);
    expect(sessionEvents()).toEqual(["session.refreshed"]);
    const after = storedConfig();
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(Date.parse(after.accessExpiresAt!)).toBeGreaterThan(Date.now());
    // The session is whole: the rotated token is good for the next renewal (had two runs spent the same
    // refresh token, auth would have ended the session, and this would be exit 2).
    writeFileSync(configFile, JSON.stringify({ ...after, accessExpiresAt: new Date(0).toISOString() }));
    expect((await m3dio(["jobs"])).code).toBe(EXIT.ok);
    expect(storedConfig().refreshToken).not.toBe(after.refreshToken);
  });

  test("keys create prints a key once; it works with login --key and M3DIO_API_KEY; keys list and delete", async () => {
    const created = await m3dio(["keys", "create", "cli test"]);
    expect(created.code).toBe(EXIT.ok);
    const key = created.out.trim();
    expect(key).toMatch(/^m3d_[\w-]{43}$/);
    const listed = await m3dio(["keys", "list", "--json"]);
    expect(listed.code).toBe(EXIT.ok);
    const mine = (JSON.parse(listed.out) as { id: number; name: string; prefix: string }[]).find(
      (item) => item.name === "cli test",
    )!;
    expect(key.startsWith(mine.prefix)).toBe(true);
    expect(listed.out).not.toContain(key);

    // A key instead of a login: stored by login --key, or given by M3DIO_API_KEY with nothing stored.
    const jobsAsUser = JSON.parse((await m3dio(["jobs", "--json"])).out) as JobView[];
    const keyConfig = { XDG_CONFIG_HOME: join(work, "key-config") };
    expect(await m3dio(["login", "--key", key, "--server", system.gatewayUrl], { env: keyConfig })).toMatchObject({
      code: EXIT.ok,
    });
    expect(JSON.parse(readFileSync(join(work, "key-config", "m3dio", "config.json"), "utf8"))).toEqual({
      server: system.gatewayUrl,
      apiKey: key,
    });
    const withKey = await m3dio(["jobs", "--json"], { env: keyConfig });
    expect(withKey.code).toBe(EXIT.ok);
    expect(JSON.parse(withKey.out)).toEqual(jobsAsUser);
    const fromEnv = await m3dio(["jobs", "--json", "--server", system.gatewayUrl], {
      env: { XDG_CONFIG_HOME: join(work, "env-config"), M3DIO_API_KEY: key },
    });
    expect(JSON.parse(fromEnv.out)).toEqual(jobsAsUser);
    // Keys are an account matter: a key cannot manage them.
    expect((await m3dio(["keys"], { env: keyConfig })).code).toBe(EXIT.auth);
    // A key the server does not know is not kept; one that is not a key at all is a usage error.
    const unknown = `m3d_${"A".repeat(43)}`;
    const other = { XDG_CONFIG_HOME: join(work, "unknown-key-config"), M3DIO_SERVER: system.gatewayUrl };
    expect((await m3dio(["login", "--key", unknown], { env: other })).code).toBe(EXIT.auth);
    expect((await m3dio(["login", "--key", "m3d_short"], { env: other })).code).toBe(EXIT.usage);

    expect(await m3dio(["keys", "delete", String(mine.id)])).toMatchObject({ code: EXIT.ok });
    const after = JSON.parse((await m3dio(["keys", "--json"])).out) as { id: number }[];
    expect(after.map((item) => item.id)).not.toContain(mine.id);
  });

  test("webhooks create prints the secret once; a job's end is posted to it; deliveries shows how it went; delete", async () => {
    const url = `http://127.0.0.1:${receiver.port}/cli-hook`;
    const created = await m3dio(["webhooks", "create", url, "--events", "job.done", "--json"]);
    expect(created.code).toBe(EXIT.ok);
    const hook = JSON.parse(created.out) as { id: string; url: string; events: string[]; secret: string };
    expect(hook).toMatchObject({ url, events: ["job.done"] });
    expect(hook.secret).toStartWith("whsec_");
    const listed = await m3dio(["webhooks", "--json"]);
    expect(JSON.parse(listed.out)).toEqual([{ id: hook.id, url, events: ["job.done"], createdAt: expect.any(String) }]);
    expect(listed.out).not.toContain(hook.secret);
    expect((await m3dio(["webhooks"])).out).toContain(url);

    const delivered = system.waitForLog("notifier", (entry) => entry.event === "webhook.delivered", 30_000);
    const converted = await m3dio(["convert", video, "-q", "--json", "-o", join(work, "hooked.mp3")]);
    expect(converted.code).toBe(EXIT.ok);
    const { job } = JSON.parse(converted.out) as { job: JobView };
    await delivered;
    expect(posted.filter((post) => post.path === "/cli-hook").map((post) => JSON.parse(post.body))).toEqual([
      expect.objectContaining({ type: "job.done", data: expect.objectContaining({ id: job.id, status: "done" }) }),
    ]);
    const deliveries = await m3dio(["webhooks", "deliveries", hook.id, "--json"]);
    expect(JSON.parse(deliveries.out)).toEqual([
      expect.objectContaining({ event: "job.done", jobId: job.id, state: "delivered", attempts: 1, lastStatus: 200 }),
    ]);

    expect(await m3dio(["webhooks", "delete", hook.id])).toMatchObject({ code: EXIT.ok });
    expect(JSON.parse((await m3dio(["webhooks", "--json"])).out)).toEqual([]);
    // A URL the server will not post to is its refusal, naming the field.
    const refused = await m3dio(["webhooks", "create", "ftp://example.com/hook"]);
    expect(refused.code).toBe(EXIT.refused);
    expect(refused.err).toMatch(/^ {2}url: /m);
  }, 60_000);

  test("a wrong password is exit 2; no login is exit 2; a server that does not answer is exit 4", async () => {
    const wrong = await m3dio(["login", "--email", user.email, "--password", "not the password at all"], {
      env: { XDG_CONFIG_HOME: join(work, "other-config"), M3DIO_SERVER: system.gatewayUrl },
    });
    expect(wrong.code).toBe(EXIT.auth);
    const refused = await problemFor("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "" },
      body: JSON.stringify({ email: user.email, password: "not the password at all" }),
    });
    expect(refused.status).toBe(401);
    expect(wrong.err).toContain(refused.detail!);
    const none = await m3dio(["jobs"], { env: { XDG_CONFIG_HOME: join(work, "empty-config") } });
    expect(none.code).toBe(EXIT.auth);

    const closed = `http://127.0.0.1:${await freePort([])}`;
    const down = await m3dio(["jobs", "--server", closed]);
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.err).toContain(closed);
    const env = await m3dio(["convert", video], { env: { M3DIO_SERVER: closed } });
    expect(env.code).toBe(EXIT.unavailable);
  });

  test("logout ends the session on the server and forgets it here", async () => {
    const { refreshToken } = storedConfig();
    expect(await m3dio(["logout", "-q"])).toMatchObject({ code: EXIT.ok, err: "" });
    expect(storedConfig()).toEqual({ server: system.gatewayUrl });
    const ended = await http.call("/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken }),
    });
    expect(ended.status).toBe(401);
    expect((await m3dio(["jobs"])).code).toBe(EXIT.auth);
  });
});
