// End to end (issue 9): the four services as real processes (test/support/system.ts)
// on real MariaDB, RabbitMQ and MongoDB (MONGODB_URL or the stand-in), with a Resend
// stand-in, driven over real HTTP only, as a user and as the reference curl flow would:
// register, log in, upload, follow the job, get the email, download and check the MP3.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  basicLogin,
  type GatewayClient,
  gatewayClient,
  type JobView,
  type RegisteredUser,
  statesOf,
  TEST_PASSWORD,
  type Token,
  type User,
} from "./support/client.ts";
import { makeVideo, probe } from "./support/media.ts";
import type { ReceivedEmail } from "./support/resend.ts";
import { type System, startSystem } from "./support/system.ts";

const VIDEO_SECONDS = 30;
const REQUEST_TIMEOUT_MS = 15_000;
const JOB_TIMEOUT_MS = 45_000;
const EMAIL_TIMEOUT_MS = 15_000;

let system: System;
let video: string; // 30 s MP4 with the index (moov) at the end
let silentVideo: string; // an MP4 without an audio track
const work = mkdtempSync(join(tmpdir(), "m3dio-e2e-"));

/**
 * The real ffmpeg, reading its input at 10× real time (`-readrate`, ffmpeg 5+): a 30 s
 * video takes about 3 s to convert instead of a fraction of a second, as a longer video
 * would, so live progress between 0 and 100 is there to be seen. The converter's
 * fluent-ffmpeg runs whatever FFMPEG_PATH names. Undefined where ffmpeg is too old.
 */
async function pacedFfmpeg(): Promise<string | undefined> {
  const ffmpeg = Bun.which("ffmpeg") ?? "ffmpeg";
  const help = Bun.spawn([ffmpeg, "-hide_banner", "-h", "full"], { stdout: "pipe", stderr: "ignore" });
  if (!(await new Response(help.stdout).text()).includes("-readrate")) return undefined;
  const path = join(work, "ffmpeg-paced");
  writeFileSync(path, `#!/bin/sh\nexec '${ffmpeg}' -readrate 10 "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}
let paced = false;

beforeAll(async () => {
  const ffmpeg = await pacedFfmpeg();
  paced = ffmpeg !== undefined;
  const videos = Promise.all([makeVideo({ seconds: VIDEO_SECONDS }), makeVideo({ seconds: 2, audio: false })]);
  videos.catch(() => {}); // awaited below, once the system is held for afterAll to stop
  system = await startSystem(paced ? { env: { converter: { FFMPEG_PATH: ffmpeg! } } } : {});
  [video, silentVideo] = await videos;
  http = gatewayClient(system.gatewayUrl, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
}, 90_000);

afterAll(async () => {
  try {
    await system?.stop();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 30_000);

// ── what a user does, over HTTP ────────────────────────────────────────────
let http: GatewayClient;
const call = (path: string, init: RequestInit = {}) => http.call(path, init);

/** Registers, verifies the address through its email and logs in, through the gateway's JSON routes. */
async function newUser(): Promise<User> {
  const email = `e2e-${crypto.randomUUID()}@example.com`;
  const password = TEST_PASSWORD;
  const registered = await http.register(email, password);
  expect(registered.status).toBe(201);
  const user = (await registered.json()) as RegisteredUser;
  expect(user).toMatchObject({ id: expect.any(Number), email });
  await http.verify(system.resend!, email); // the ready email goes only to a verified address
  const login = await http.login(email, password);
  expect(login.status).toBe(200);
  const body = (await login.json()) as Token;
  expect(body.token.split(".")).toHaveLength(3);
  expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
  return {
    id: String(user.id),
    email,
    password,
    token: body.token,
    headers: { authorization: `Bearer ${body.token}` },
  };
}

async function upload(
  user: User,
  path: string,
  filename: string,
  route = "/jobs",
  type = "video/mp4",
): Promise<JobView> {
  const response = await http.postVideo(user, await Bun.file(path).bytes(), filename, { route, type });
  const text = await response.text();
  expect({ status: response.status, body: text }).toMatchObject({ status: 202 });
  const job = JSON.parse(text) as JobView;
  // A copy: bun 1.4.5's toMatchObject writes asymmetric matchers into the object it checks.
  expect(structuredClone(job)).toMatchObject({
    id: expect.stringMatching(/^[0-9a-f]{24}$/),
    status: "queued",
    progress: 0,
    source: { kind: "upload", filename },
  });
  return job;
}

/** Follows a job live (SSE) until it ends; answers the job states seen, in order. */
async function follow(user: User, id: string): Promise<JobView[]> {
  const stream = await http.follow(user, id, JOB_TIMEOUT_MS);
  expect(stream.status).toBe(200);
  expect(stream.contentType).toContain("text/event-stream");
  expect(stream.error).toBeUndefined(); // ended by the server, within the time limit
  expect(stream.events.length).toBeGreaterThan(0);
  expect(new Set(stream.events.map((event) => event.event))).toEqual(new Set(["status"]));
  return statesOf(stream.events);
}

/** Polls GET /jobs/:id until the job is done or failed; answers the states seen (every answer a 200). */
async function poll(user: User, id: string, timeoutMs = JOB_TIMEOUT_MS): Promise<JobView[]> {
  const { states, others } = await http.poll(user, id, timeoutMs, 250);
  expect(others).toEqual([]);
  return states;
}

/** The one email the Resend stand-in received for `to` whose subject matches, within the time limit. */
async function emailTo(to: string, subject: RegExp, timeoutMs = EMAIL_TIMEOUT_MS): Promise<ReceivedEmail> {
  const deadline = Date.now() + timeoutMs;
  const mine = () => system.resend!.received.filter((email) => [email.to].flat().includes(to));
  while (!mine().some((email) => subject.test(email.subject))) {
    if (Date.now() > deadline)
      throw new Error(
        `no email to ${to} matching ${subject} within ${timeoutMs} ms; got ${JSON.stringify(mine().map((e) => e.subject))}`,
      );
    await Bun.sleep(50);
  }
  return mine().find((email) => subject.test(email.subject))!;
}

/** Downloads an MP3 answer to a file and probes it. */
async function saveAndProbe(response: Response, name: string) {
  const path = join(work, name);
  const bytes = await Bun.write(path, await response.arrayBuffer());
  return { bytes, ...(await probe(path)) };
}

const ORDER = ["queued", "converting", "done", "failed"] as const;
const rank = (status: JobView["status"]) => Math.min(ORDER.indexOf(status), 2); // done and failed are both the end

/** Status only moves forward and progress never goes back. */
function expectForward(states: JobView[]) {
  for (let i = 1; i < states.length; i++) {
    expect(rank(states[i]!.status)).toBeGreaterThanOrEqual(rank(states[i - 1]!.status));
    expect(states[i]!.progress).toBeGreaterThanOrEqual(states[i - 1]!.progress);
  }
}

/** Top-level MP4 boxes in order: proves the test video keeps its index at the end. */
async function mp4Boxes(path: string): Promise<string[]> {
  const bytes = new Uint8Array(await Bun.file(path).arrayBuffer());
  const view = new DataView(bytes.buffer);
  const boxes: string[] = [];
  for (let at = 0; at + 8 <= bytes.length; ) {
    let size = view.getUint32(at);
    if (size === 1) size = Number(view.getBigUint64(at + 8));
    boxes.push(new TextDecoder().decode(bytes.subarray(at + 4, at + 8)));
    if (size < 8) break;
    at += size;
  }
  return boxes;
}

// ── the tests ──────────────────────────────────────────────────────────────
describe("end to end, four services as processes", () => {
  test("register, log in, upload a 30 s MP4 (index at the end), follow it live, get the email, download the MP3 from its link", async () => {
    const boxes = await mp4Boxes(video);
    expect(boxes.indexOf("moov")).toBeGreaterThan(boxes.indexOf("mdat"));

    const user = await newUser();
    const job = await upload(user, video, "holiday clip.mp4");
    expect(job.links.events).toBe(`/jobs/${job.id}/events`);

    const states = await follow(user, job.id);
    expectForward(states);
    const last = states.at(-1)!;
    expect(last).toMatchObject({ id: job.id, status: "done", progress: 100 });
    expect(states[0]!.progress).toBeLessThan(100); // followed while it ran, not only seen finished
    // Paced, the conversion lasts long enough that progress between 0 and 100 shows too.
    if (paced)
      expect(states.some((state) => state.status === "converting" && state.progress > 0 && state.progress < 100)).toBe(
        true,
      );
    expect(last.audio!.durationSec).toBeCloseTo(VIDEO_SECONDS, 0);

    const email = await emailTo(user.email, /^Your MP3 is ready/);
    expect(email.subject).toBe("Your MP3 is ready");
    expect(email.text).toContain("File: holiday clip.mp3");
    expect(email.from).toBe("m3dio <mp3@m3dio.test>");
    expect(email.idempotencyKey).toBe(`job-${job.id}-done`);
    // The email's download link is signed: it opens the MP3 without a login (a player, a friend).
    const link = email.text.match(/https?:\/\/\S+/)?.[0] ?? "";
    expect(link).toStartWith(`${system.gatewayUrl}/jobs/${job.id}/audio?expires=`);
    expect(email.html).toContain(`href="${link.replace("&", "&amp;")}"`);
    expect(email.text).toContain(`${system.gatewayUrl}/#/jobs/${job.id}`);
    expect(email.text).toContain("Length: 0:30");

    // The route without a signed link needs the user's login; the signed link does not.
    expect((await call(`/jobs/${job.id}/audio`)).status).toBe(401);
    const audio = await call(link);
    expect(audio.status).toBe(200);
    expect(audio.headers.get("content-type")).toBe("audio/mpeg");
    expect(audio.headers.get("content-disposition")).toContain("holiday clip.mp3");
    const mp3 = await saveAndProbe(audio, "holiday.mp3");
    expect(mp3.format).toBe("mp3");
    expect(mp3.streams).toEqual(["audio:mp3", "video:mjpeg"]); // a frame of the video is its cover
    expect(Math.abs(mp3.durationSec - VIDEO_SECONDS)).toBeLessThanOrEqual(0.5);

    const final = (await (await call(`/jobs/${job.id}`, { headers: user.headers })).json()) as JobView;
    expect(final).toMatchObject({ status: "done", progress: 100, audio: { bytes: mp3.bytes } });
  }, 60_000);

  test("the reference curl flow: POST /login (Basic) → token text, POST /upload, poll the job, GET /download?fid=", async () => {
    const user = await newUser();
    // curl -X POST -u email:password $GATEWAY/login
    const login = await call("/login", basicLogin(user.email, user.password));
    expect(login.status).toBe(200);
    expect(login.headers.get("content-type")).toStartWith("text/plain");
    const token = await login.text();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const curl = { ...user, token, headers: { authorization: `Bearer ${token}` } };

    // curl -F file=@video.mp4 -H "Authorization: Bearer $TOKEN" $GATEWAY/upload  (curl sends the part as application/octet-stream)
    const job = await upload(curl, video, "video.mp4", "/upload", "");
    const states = await poll(curl, job.id);
    expectForward(states);
    expect(states.at(-1)).toMatchObject({
      status: "done",
      progress: 100,
      source: { filename: "video.mp4", contentType: "video/mp4" },
    }); // sniffed, not trusted

    const email = await emailTo(user.email, /^Your MP3 is ready/);
    const fid = email.text.match(/MP3 file id: ([0-9a-f]{24})/)?.[1];
    expect(fid).toBeDefined();

    // curl --output video.mp3 -H "Authorization: Bearer $TOKEN" "$GATEWAY/download?fid=$FID"
    const download = await call(`/download?fid=${fid}`, { headers: curl.headers });
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toBe("audio/mpeg");
    expect(download.headers.get("content-disposition")).toContain("video.mp3");
    const mp3 = await saveAndProbe(download, "curl.mp3");
    expect(mp3.format).toBe("mp3");
    expect(mp3.streams).toEqual(["audio:mp3", "video:mjpeg"]); // a frame of the video is its cover
    expect(Math.abs(mp3.durationSec - VIDEO_SECONDS)).toBeLessThanOrEqual(0.5);

    // Only the owner: someone else's token finds no such MP3.
    const stranger = await newUser();
    expect((await call(`/download?fid=${fid}`, { headers: stranger.headers })).status).toBe(404);
  }, 60_000);

  test("a video without audio ends in a failed job, and the user is told why by email", async () => {
    const user = await newUser();
    const job = await upload(user, silentVideo, "silent.mp4");
    const states = await follow(user, job.id);
    expectForward(states);
    expect(states.at(-1)).toMatchObject({ id: job.id, status: "failed", error: "the video has no audio track" });

    const view = await call(`/jobs/${job.id}`, { headers: user.headers });
    expect(await view.json()).toMatchObject({ status: "failed", error: "the video has no audio track" });
    const audio = await call(`/jobs/${job.id}/audio`, { headers: user.headers });
    expect(audio.status).toBe(409);
    expect(audio.headers.get("content-type")).toContain("application/problem+json");
    expect(((await audio.json()) as { detail: string }).detail).toContain("no audio track");

    const email = await emailTo(user.email, /^Your MP3 could not be made$/);
    expect(email.text).toContain('"silent.mp4"');
    expect(email.text).toContain("no audio track");
    expect(email.html).toContain("no audio track");
    expect(email.idempotencyKey).toBe(`job-${job.id}-failed`);
    expect(system.resend!.received.filter((e) => e.to === user.email && /ready/.test(e.subject))).toEqual([]);
  }, 60_000);
});
