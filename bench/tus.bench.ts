// Resumable uploads (issue 20): a 1 GiB tus upload in 8 MiB PATCHes to a gateway process
// (`bun gateway.ts`) with a real auth process, RabbitMQ (a vhost of its own) and MongoDB
// (MONGODB_URL, or the stand-in in a process of its own so its memory is not counted): the
// upload's throughput (from the POST to the last PATCH's Job-Id, one PATCH after another as
// a tus client sends them) and the gateway's peak memory meanwhile.
//
// The file is made on the fly: a real small MP4 (the gateway sniffs the first bytes), then
// filler bytes; nothing converts it.
import { MiB, peakRssDuring, report, reportLoad, startBenchStack, startUploadGateway } from "./support.ts";

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
const stack = await startBenchStack();
try {
  const { gateway, base, authorization, header, rest } = await startUploadGateway(BENCH, stack, UPLOAD_BYTES);

  // Twice: the peak varies with when the collector runs; the higher one counts.
  const peaks: number[] = [];
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let round = 0; round < 2; round++) {
    const { result, peak, cpu } = await peakRssDuring(gateway.pid, () => upload(base, authorization, header));
    const { seconds, jobId } = result;
    peaks.push(peak);
    cpus.push(cpu / 1000 / (UPLOAD_BYTES / (1024 * MiB)));
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
  // CPU time changes less than wall time with other work on the machine.
  report(BENCH, "gateway CPU per GiB, tus upload (each of 2)", Math.min(...cpus), "s");
  report(BENCH, "gateway CPU per GiB, tus upload, the other run", Math.max(...cpus), "s");
  reportLoad(BENCH, "end");
} finally {
  await stack.stop();
}
