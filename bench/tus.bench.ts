// Resumable uploads (issue 20): a 1 GiB tus upload in 8 MiB PATCHes to a gateway process
// (`bun gateway.ts`) with a real auth process, RabbitMQ (a vhost of its own) and MongoDB
// (MONGODB_URL, or the stand-in in a process of its own so its memory is not counted): the
// upload's throughput (from the POST to the last PATCH's Job-Id, one PATCH after another as
// a tus client sends them) and the gateway's peak memory meanwhile.
//
// The file is made on the fly: a real small MP4 (the gateway sniffs the first bytes), then
// filler bytes; nothing converts it.
import { readFileSync } from "node:fs";
import { gatewayClient } from "../test/support/client.ts";
import {
  cachedVideo,
  MiB,
  readMemory,
  report,
  reportLoad,
  resetPeak,
  sampleMemory,
  startBenchStack,
  startService,
} from "./support.ts";

const BENCH = "tus";
const UPLOAD_BYTES = 1024 * MiB;
const PATCH_BYTES = 8 * MiB;
const RSS_GOAL_MB = 150;
const RATE_GOAL = 100;
const TUS = { "tus-resumable": "1.0.0" };

/** One upload of UPLOAD_BYTES: POST, then PATCHes of PATCH_BYTES; answers the seconds it took and the job's id. */
async function upload(
  base: string,
  authorization: string,
  header: Uint8Array,
): Promise<{ seconds: number; jobId: string }> {
  const filler = new Uint8Array(PATCH_BYTES).fill(0x2e);
  const first = filler.slice();
  first.set(header);
  const started = performance.now();
  const created = await fetch(`${base}/uploads`, {
    method: "POST",
    headers: {
      authorization,
      ...TUS,
      "upload-length": String(UPLOAD_BYTES),
      "upload-metadata": `filename ${btoa("big.mp4")}`,
    },
  });
  if (created.status !== 201) throw new Error(`POST /uploads answered ${created.status}: ${await created.text()}`);
  const url = `${base}${created.headers.get("location")}`;
  let jobId = "";
  for (let offset = 0; offset < UPLOAD_BYTES; offset += PATCH_BYTES) {
    const response = await fetch(url, {
      method: "PATCH",
      headers: {
        authorization,
        ...TUS,
        "upload-offset": String(offset),
        "content-type": "application/offset+octet-stream",
      },
      body: offset === 0 ? first : filler,
    });
    if (response.status !== 204)
      throw new Error(`PATCH at ${offset} answered ${response.status}: ${await response.text()}`);
    jobId = response.headers.get("job-id") ?? "";
  }
  if (!jobId) throw new Error("the last PATCH answered no Job-Id");
  return { seconds: (performance.now() - started) / 1000, jobId };
}

reportLoad(BENCH, "start");
const { mongoUrl, vhost, auth, stop } = await startBenchStack();
try {
  const gateway = await startService("gateway", {
    AUTH_URL: auth.url,
    MONGODB_URL: mongoUrl,
    AMQP_URL: vhost.url,
    MAX_UPLOAD_BYTES: String(2 * UPLOAD_BYTES),
    MAX_ACTIVE_JOBS: "100",
    USER_STORAGE_BYTES: String(16 * UPLOAD_BYTES),
  });
  const base = gateway.url;
  const { authorization } = (await gatewayClient(base).newUser("bench")).headers;
  const header = readFileSync(await cachedVideo("header-1s-160x90", { seconds: 1, faststart: true }));
  const rest = readMemory(gateway.pid)!.rss;
  report(BENCH, "gateway RSS at rest (after login)", rest / 1e6, "MB");

  // Twice: the peak varies with when the collector runs; the higher one counts.
  const peaks: number[] = [];
  const rates: number[] = [];
  for (let round = 0; round < 2; round++) {
    resetPeak(gateway.pid);
    const sampler = sampleMemory([gateway.pid], 50);
    const { seconds, jobId } = await upload(base, authorization, header);
    const memory = sampler.stop().get(gateway.pid)!;
    peaks.push(Math.max(memory.peakRss, memory.hwm));
    rates.push(UPLOAD_BYTES / 1e6 / seconds);
    // Free the stand-in's memory before the next one.
    await fetch(`${base}/jobs/${jobId}`, { method: "DELETE", headers: { authorization } });
  }
  report(
    BENCH,
    "peak RSS, 1 GiB tus upload in 8 MiB PATCHes (higher of 2)",
    Math.max(...peaks) / 1e6,
    "MB",
    `< ${RSS_GOAL_MB} MB`,
  );
  report(BENCH, "the higher peak over rest", (Math.max(...peaks) - rest) / 1e6, "MB");
  report(BENCH, "tus upload throughput, 8 MiB PATCHes (each of 2)", Math.min(...rates), "MB/s", `>= ${RATE_GOAL} MB/s`);
  report(BENCH, "tus upload throughput, the other run", Math.max(...rates), "MB/s");
  reportLoad(BENCH, "end");
} finally {
  await stop();
}
