// Smoke test of a running m3dio, over HTTP only, as a user would go: the page and
// the docs answer, register, log in, upload a small video made here with ffmpeg,
// follow the job until it is done, download the MP3 and check with ffprobe that it
// is audio, then delete the job.
//   bun scripts/smoke.ts [base URL]      (or SMOKE_BASE_URL; default http://localhost:8080)
// Used by `bun run k3d:up`, by CI after `docker compose up`, and by hand, from a checkout
// (the video is made with test/support/media.ts, as the tests make theirs). Needs ffmpeg
// and ffprobe on the PATH. Exits non-zero with the step that failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeVideo, probe } from "../test/support/media.ts";

const base = (process.argv[2] ?? process.env.SMOKE_BASE_URL ?? "http://localhost:8080").replace(/\/+$/, "");
const readyTimeoutMs = Number(process.env.SMOKE_READY_TIMEOUT_SEC ?? 300) * 1000;
const jobTimeoutMs = Number(process.env.SMOKE_JOB_TIMEOUT_SEC ?? 180) * 1000;
const REQUEST_TIMEOUT_MS = 30_000;

class SmokeFailure extends Error {}

function step(message: string) {
  console.log(`smoke: ${message}`);
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SmokeFailure(message);
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, { ...init, signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function expectStatus(response: Response, expected: number, what: string): Promise<Response> {
  if (response.status !== expected) {
    const body = await response.text().catch(() => "");
    throw new SmokeFailure(`${what}: expected ${expected}, got ${response.status} ${body.slice(0, 500)}`);
  }
  return response;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitReady() {
  const deadline = Date.now() + readyTimeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await call("/health/ready", { signal: AbortSignal.timeout(5000) });
      if (response.ok) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(2000);
  }
  throw new SmokeFailure(`${base}/health/ready not ready within ${readyTimeoutMs / 1000} s (last: ${last})`);
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), "m3dio-smoke-"));
  try {
    step(`waiting for ${base}/health/ready`);
    await waitReady();

    const page = await expectStatus(await call("/"), 200, "GET /");
    check((page.headers.get("content-type") ?? "").includes("text/html"), "GET / does not answer HTML");
    await page.arrayBuffer();
    await expectStatus(await call("/docs"), 200, "GET /docs");
    const openapi = (await (await expectStatus(await call("/docs/json"), 200, "GET /docs/json")).json()) as {
      openapi?: string;
    };
    check(openapi.openapi?.startsWith("3."), "GET /docs/json is not an OpenAPI 3 document");
    step("page, /docs and /docs/json answer");

    const email = `smoke-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
    const password = `smoke-${crypto.randomUUID()}`;
    const json = { "content-type": "application/json" };
    await expectStatus(
      await call("/auth/register", { method: "POST", headers: json, body: JSON.stringify({ email, password }) }),
      201,
      "register",
    );
    const login = await expectStatus(
      await call("/auth/login", { method: "POST", headers: json, body: JSON.stringify({ email, password }) }),
      200,
      "login",
    );
    const { token } = (await login.json()) as { token: string };
    check(typeof token === "string" && token.split(".").length === 3, "login answered no JWT");
    const auth = { authorization: `Bearer ${token}` };
    step(`registered and logged in as ${email}`);

    const video = await makeVideo({ seconds: 3 }, join(work, "smoke.mp4"));
    const form = new FormData();
    form.append("file", Bun.file(video, { type: "video/mp4" }), "smoke.mp4");
    const upload = await expectStatus(
      await call("/jobs", { method: "POST", headers: auth, body: form }),
      202,
      "upload",
    );
    const { id } = (await upload.json()) as { id: string };
    check(typeof id === "string" && id.length > 0, "upload answered no job id");
    step(`uploaded a 3 s video: job ${id}`);

    const deadline = Date.now() + jobTimeoutMs;
    let job: { status: string; progress?: number; error?: string } = { status: "queued" };
    let shown = "";
    while (job.status !== "done") {
      check(job.status !== "failed", `job ${id} failed: ${job.error ?? "no reason given"}`);
      check(Date.now() < deadline, `job ${id} not done within ${jobTimeoutMs / 1000} s (status ${job.status})`);
      await sleep(1000);
      job = (await (
        await expectStatus(await call(`/jobs/${id}`, { headers: auth }), 200, "GET /jobs/:id")
      ).json()) as typeof job;
      const now = `${job.status} ${job.progress ?? 0}%`;
      if (now !== shown) {
        shown = now;
        step(`job ${id}: ${now}`);
      }
    }

    const audio = await expectStatus(await call(`/jobs/${id}/audio`, { headers: auth }), 200, "GET /jobs/:id/audio");
    check(
      (audio.headers.get("content-type") ?? "").startsWith("audio/mpeg"),
      `audio has content-type ${audio.headers.get("content-type")}`,
    );
    const mp3 = join(work, "smoke.mp3");
    await Bun.write(mp3, await audio.arrayBuffer());
    const mp3Info = await probe(mp3);
    check(mp3Info.streams.includes("audio:mp3"), `download is not MP3 audio: ${JSON.stringify(mp3Info.streams)}`);
    const seconds = mp3Info.durationSec;
    check(seconds > 2 && seconds < 4, `MP3 lasts ${seconds} s, the video 3 s`);
    step(`downloaded ${Bun.file(mp3).size} bytes of MP3, ${seconds.toFixed(1)} s`);

    const removed = await call(`/jobs/${id}`, { method: "DELETE", headers: auth });
    check(removed.ok, `DELETE /jobs/${id} answered ${removed.status}`);
    await expectStatus(await call(`/jobs/${id}`, { headers: auth }), 404, "GET /jobs/:id after DELETE");
    step("deleted the job");
    step(`ok: ${base}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  console.error(`smoke: FAILED: ${error instanceof SmokeFailure ? error.message : (error as Error).stack}`);
  process.exit(1);
}
