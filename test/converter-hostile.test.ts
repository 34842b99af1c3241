// Hostile input to the converter, through the gateway wherever the gateway lets it in:
// text files that ffmpeg, left to guess, reads as manifests naming files on the
// converter's disk or URLs; hours of audio in a few hundred kilobytes; a length that
// lies; and a job deleted while it downloads or converts. Real gateway, auth, MariaDB,
// RabbitMQ, MongoDB (or the stand-in) and ffmpeg; the converter runs in this process.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseJobId } from "../lib/jobs.ts";
import { createLogger } from "../lib/log.ts";
import { QUEUES } from "../lib/queue.ts";
import type { JobView } from "./support/client.ts";
import {
  dashManifest,
  dashSequence,
  ffconcatList,
  hlsPlaylist,
  makeSecretAudio,
  makeSilence,
  processesFor,
  unrestrictedProbe,
} from "./support/hostile.ts";
import { drainQueue, settle, waitForJob as waitForFinished } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let user: { headers: Record<string, string> };
const tmp = mkdtempSync(join(tmpdir(), "m3dio-hostile-test-"));
/** Files on the converter's disk that an upload must not get it to read. */
const secrets = mkdtempSync(join(tmpdir(), "m3dio-secrets-"));
/** A server on the converter's network that an upload must not get it to ask anything. */
let canary: { url: string; requests: string[]; stop(): void };

beforeAll(async () => {
  stack = await startStack();
  user = await stack.newUser("hostile");
  await makeSecretAudio(secrets, "secret.m4a");
  for (const n of ["001", "002", "003"]) await makeSecretAudio(secrets, `part-${n}.m4a`);
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      requests.push(request.url);
      return new Response("nothing here", { status: 404 });
    },
  });
  canary = { url: `http://127.0.0.1:${server.port}`, requests, stop: () => server.stop(true) };
}, 60_000);
afterAll(async () => {
  canary?.stop();
  await stack?.stop();
});

/** What the in-process converters log, parsed: a test waits for what a worker says it did. */
const entries: Record<string, unknown>[] = [];
const converterLog = createLogger("converter", "info", {
  write: (line: string) => void entries.push(JSON.parse(line)),
});
const loggedGone = (jobId: string, timeoutMs: number) =>
  settle(
    async () => entries.filter((entry) => entry.event === "job.gone" && entry.jobId === jobId),
    (found) => found.length > 0,
    timeoutMs,
  );

const startConverter = (env: Record<string, string> = {}) =>
  startLocalConverter(
    { mongo: stack.mongo, mongoUrl: stack.mongoUrl, amqpUrl: stack.vhost.url, tmpDir: tmp, log: converterLog },
    { LOG_LEVEL: "info", SHUTDOWN_GRACE_MS: "1000", URL_ALLOW_HOSTS: "127.0.0.1", ...env },
  );

const jobs = () => stack.gateway.jobs;
const jobOf = (id: string) => jobs().get(parseJobId(id)!);
const upload = (bytes: Buffer | Blob, name: string) => {
  const form = new FormData();
  form.append("file", bytes instanceof Blob ? bytes : new Blob([Uint8Array.from(bytes)]), name);
  return stack.call("/jobs", { method: "POST", headers: user.headers, body: form });
};
/** Uploads through the gateway, which must take it (202); answers the job's id. */
async function uploadJob(bytes: Buffer | Blob, name: string): Promise<string> {
  const response = await upload(bytes, name);
  expect(response.status).toBe(202);
  return ((await response.json()) as JobView).id;
}
/** A job whose stored type claims a video the content is not: as if the gateway's sniffer had been fooled. */
async function storeJob(bytes: Buffer, contentType: string, filename: string): Promise<string> {
  const { files } = stack.gateway;
  const stored = await files.upload("videos", Readable.from([bytes]), { owner: "7", filename, contentType });
  const job = await jobs().create({
    userId: "7",
    email: "seven@example.com",
    videoFileId: stored.id,
    source: { kind: "upload", filename, bytes: stored.bytes, contentType },
  });
  await stack.queue.publish(QUEUES.video, { jobId: job._id.toHexString() }, { messageId: job._id.toHexString() });
  return job._id.toHexString();
}
const waitForJob = (id: string, timeoutMs = 30_000) => waitForFinished(jobs(), id, ["done", "failed"], timeoutMs);
const filesOf = (bucket: "videos" | "mp3s", jobId: string) =>
  stack.mongo.db.collection(`${bucket}.files`).countDocuments({ "metadata.jobId": jobId });
const dirsOf = async (jobId: string) => readdirSync(tmp).filter((dir) => dir.includes(`-${jobId}-`));
/** The job's temp dirs, once none is left or 3 s (the promised bound) have passed. */
const tempDirsOnceSettled = (id: string) =>
  settle(
    () => dirsOf(id),
    (dirs) => dirs.length === 0,
    3000,
  );
const takeMp3Messages = (expected = 0) => drainQueue(stack.vhost.url, QUEUES.mp3, expected);

/** The job failed once, with `reason`, and left nothing: no MP3, no ffmpeg, no temp dir; the user is told. */
async function expectFailedCleanly(id: string, reason: RegExp, timeoutMs?: number) {
  const job = await waitForJob(id, timeoutMs);
  expect(job.status).toBe("failed");
  expect(job.error).toMatch(reason);
  expect(job.attempts).toBe(1);
  expect(job.audioFileId).toBeUndefined();
  expect(await filesOf("mp3s", id)).toBe(0);
  expect(
    await settle(
      async () => processesFor(id),
      (running) => running.length === 0,
    ),
  ).toEqual([]);
  expect(
    await settle(
      () => dirsOf(id),
      (dirs) => dirs.length === 0,
    ),
  ).toEqual([]);
  expect(await takeMp3Messages(1)).toEqual([{ jobId: id, status: "failed" }]);
  return job;
}

describe("with the default limits", () => {
  let converter: Awaited<ReturnType<typeof startConverter>>;
  beforeAll(async () => {
    converter = await startConverter();
  });
  afterAll(() => converter?.stop());

  describe("manifests disguised as videos are never opened as manifests", () => {
    const notReadable = /not a video we can read/;

    test("DASH behind `<!--free-->` passes the gateway as QuickTime; its file, sequence and URL are never read", async () => {
      const payloads = {
        "a file on the converter's disk": dashManifest(`file://${secrets}/secret.m4a`),
        "a numbered sequence of files (a pattern)": dashSequence(secrets, "part-", 3),
        "a URL on the converter's network": dashManifest(`${canary.url}/secret.m4a`),
      };
      for (const [what, payload] of Object.entries(payloads)) {
        expect(payload.length, what).toBeLessThan(1024);
        // The attack is real: ffmpeg left to guess reads the manifest, and through it the files.
        const beside = join(secrets, "payload");
        writeFileSync(beside, payload);
        if (!what.startsWith("a URL")) {
          const guessed = await unrestrictedProbe(beside);
          expect(guessed.format, what).toBe("dash");
          expect(guessed.audioSeconds, what).toBeGreaterThan(1);
        }
        const id = await uploadJob(payload, "holiday.mov");
        expect((await jobOf(id))?.source.contentType, what).toBe("video/quicktime"); // what the gateway sniffed
        await expectFailedCleanly(id, notReadable);
      }
      expect(canary.requests).toEqual([]);
    }, 60_000);

    test("HLS and ffconcat (which the gateway refuses) fail cleanly even in a job that claims a video type", async () => {
      const payloads: [string, Buffer, string, string][] = [
        ["HLS naming a file", hlsPlaylist(`${secrets}/secret.m4a`), "video/mp2t", "hls"],
        ["HLS naming a URL", hlsPlaylist(`${canary.url}/secret.m4a`), "video/mp4", "hls"],
        ["ffconcat naming a file beside it", ffconcatList("secret.m4a"), "video/mp4", "concat"],
        ["ffconcat naming itself", ffconcatList("input", "input"), "video/matroska", "concat"],
        ["HLS with a type no upload has", hlsPlaylist(`${secrets}/secret.m4a`), "application/vnd.apple.mpegurl", "hls"],
      ];
      for (const [what, payload, claimed, format] of payloads) {
        const refused = await upload(payload, "holiday.mp4");
        expect(refused.status, what).toBe(415);
        const beside = join(secrets, "payload");
        writeFileSync(beside, payload);
        if (!what.includes("URL") && !what.includes("itself")) {
          expect((await unrestrictedProbe(beside)).format, what).toBe(format);
        }
        const id = await storeJob(payload, claimed, "claimed.mp4");
        await expectFailedCleanly(id, /not a video we can read|no audio track/);
      }
      expect(canary.requests).toEqual([]);
    }, 60_000);
  });

  describe("bounds on work", () => {
    test("10 hours of silence in 250 KB are refused within seconds, naming the limit", async () => {
      const silence = await makeSilence(10 * 3600);
      expect(Bun.file(silence).size).toBeLessThan(512 * 1024);
      const id = await uploadJob(Bun.file(silence), "ten-hours.mkv");
      const job = await expectFailedCleanly(id, /longer than/, 20_000);
      expect(job.error).toBe("the audio lasts 10:00:00, longer than the 4:00:00 (14400 s) this service converts");
    }, 60_000);

    test("a header claiming 1 s over 40 hours of audio: ffmpeg is stopped at its time budget", async () => {
      const liar = await makeSilence(40 * 3600, { claimSeconds: 1 });
      const id = await uploadJob(Bun.file(liar), "one-second.mkv");
      // The budget is 10 s plus half the claimed length. ffmpeg turns this silence into MP3 at
      // ~4,000x real time on a quiet 2-core machine: 10 hours (~9 s) could beat the budget;
      // 40 hours need ~36 s.
      const job = await expectFailedCleanly(id, /took longer than/, 40_000);
      expect(job.error).toStartWith("converting took longer than the 0:11 allowed for 0:01 of audio");
    }, 60_000);
  });

  describe("DELETE /jobs/:id stops the work on the job within 3 s", () => {
    test("mid-conversion: ffmpeg ends, no MP3 is kept, nothing is announced, the temp dir is gone", async () => {
      const id = await uploadJob(Bun.file(await makeSilence(3 * 3600)), "three-hours.mkv");
      const ffmpeg = await settle(
        async () => processesFor(id).filter((process) => process.endsWith("ffmpeg")),
        (running) => running.length > 0,
        30_000,
      );
      expect(ffmpeg).toHaveLength(1);
      const deleting = performance.now();
      expect((await stack.call(`/jobs/${id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
      expect(await loggedGone(id, 3000)).toHaveLength(1);
      expect(
        await settle(
          async () => processesFor(id),
          (running) => running.length === 0,
          3000,
        ),
      ).toEqual([]);
      expect(await tempDirsOnceSettled(id)).toEqual([]);
      expect(performance.now() - deleting).toBeLessThan(3000);
      expect(await filesOf("mp3s", id)).toBe(0);
      expect(await filesOf("videos", id)).toBe(0);
      expect(await takeMp3Messages()).toEqual([]);
    }, 60_000);

    test("mid-download: the link's connection is closed and no partial video is kept", async () => {
      const head = Buffer.from(await Bun.file(await makeVideo({ seconds: 2 })).arrayBuffer()).subarray(0, 8192);
      let closedAt: number | undefined;
      let asked = false;
      // A real video's first bytes (they pass the sniffer), then a trickle that would take minutes.
      const server = createServer((_request, response) => {
        asked = true;
        response.writeHead(200, { "content-type": "video/mp4", "content-length": String(50 * 1024 * 1024) });
        response.write(head);
        const trickle = setInterval(() => response.write(Buffer.alloc(1024)), 100);
        response.on("close", () => {
          clearInterval(trickle);
          closedAt = performance.now();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const linkGateway = stack.gatewayWith({ URL_ALLOW_HOSTS: "127.0.0.1" });
      await linkGateway.start();
      try {
        const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/slow.mp4`;
        const posted = await stack.call(
          "/jobs",
          {
            method: "POST",
            headers: { ...user.headers, "content-type": "application/json" },
            body: JSON.stringify({ url }),
          },
          linkGateway.app,
        );
        expect(posted.status).toBe(202);
        const id = ((await posted.json()) as JobView).id;
        const downloading = await settle(
          async () => (await jobOf(id))!,
          (job) => asked && job.phase === "downloading",
          30_000,
        );
        expect(downloading.phase).toBe("downloading");
        const deleting = performance.now();
        expect((await stack.call(`/jobs/${id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
        expect(await loggedGone(id, 3000)).toHaveLength(1);
        expect(
          await settle(
            async () => closedAt,
            (at) => at !== undefined,
            3000,
          ),
        ).toBeDefined();
        expect(closedAt! - deleting).toBeLessThan(3000);
        expect(
          await settle(
            () => filesOf("videos", id),
            (count) => count === 0,
            3000,
          ),
        ).toBe(0);
        expect(await tempDirsOnceSettled(id)).toEqual([]);
        expect(await takeMp3Messages()).toEqual([]);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    }, 60_000);
  });
});

describe("with MAX_AUDIO_SECONDS=2", () => {
  test("a 3-second video fails at once, naming the limit", async () => {
    const converter = await startConverter({ MAX_AUDIO_SECONDS: "2" });
    try {
      const id = await uploadJob(Bun.file(await makeVideo({ seconds: 3 })), "three-seconds.mp4");
      const job = await expectFailedCleanly(id, /longer than/);
      expect(job.error).toBe("the audio lasts 0:03, longer than the 0:02 (2 s) this service converts");
    } finally {
      await converter.stop();
    }
  }, 60_000);
});
