// gateway as a real process (`bun gateway.ts`) with a real auth process, RabbitMQ
// (a vhost of its own) and MongoDB (MONGODB_URL, or the stand-in in a process of its
// own so its memory is not counted): the gateway's peak memory while a 1 GiB upload
// streams through it (multipart and raw video/mp4), the upload's throughput, and
// authenticated GET /jobs/:id per second at 64 connections.
//
// The 1 GiB body is made on the fly: a real small MP4 (the gateway sniffs the first
// bytes for a video signature) followed by filler bytes; nothing converts it.
import { drive, MiB, peakRssDuring, report, reportLoad, startBenchStack, startUploadGateway } from "./support.ts";

const BENCH = "gateway";
const UPLOAD_BYTES = 1024 * MiB;
const CHUNK = 1 * MiB;
const RSS_GOAL_MB = 150;

/** A body of exactly `total` bytes: `head`, then filler, then `tail`, in CHUNK pieces, pulled as the socket takes them. */
function generatedBody(head: Uint8Array, total: number, tail = new Uint8Array(0)): ReadableStream<Uint8Array> {
  const filler = new Uint8Array(CHUNK).fill(0x2e);
  let sent = 0;
  const fillerBytes = total - head.length - tail.length;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent === 0) {
          controller.enqueue(head);
        } else if (sent - head.length < fillerBytes) {
          const n = Math.min(CHUNK, fillerBytes - (sent - head.length));
          // A fresh view each time: the runtime may hold a chunk until the socket takes it.
          controller.enqueue(n === CHUNK ? filler.slice() : filler.slice(0, n));
          sent += n;
          return;
        } else {
          if (tail.length) controller.enqueue(tail);
          controller.close();
          return;
        }
        sent += head.length;
      },
    },
    { highWaterMark: 0 },
  );
}

reportLoad(BENCH, "start");
const stack = await startBenchStack();
try {
  // One user stores every upload of the bench (over 4 GiB, none converted): no quota in the way.
  const { gateway, base, authorization, header } = await startUploadGateway(BENCH, stack, UPLOAD_BYTES);

  const uploads: {
    label: string;
    init: () => { headers: Record<string, string>; body: ReadableStream<Uint8Array> };
    path: string;
  }[] = [
    {
      label: "multipart",
      path: "/jobs",
      init: () => {
        const boundary = `----m3dioBench${Math.random().toString(16).slice(2)}`;
        const opening = new TextEncoder().encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n`,
        );
        const closing = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
        const head = new Uint8Array(opening.length + header.length);
        head.set(opening);
        head.set(header, opening.length);
        return {
          headers: { authorization, "content-type": `multipart/form-data; boundary=${boundary}` },
          body: generatedBody(head, UPLOAD_BYTES + opening.length + closing.length, closing),
        };
      },
    },
    {
      label: "raw video/mp4",
      path: "/jobs?filename=big.mp4",
      init: () => ({
        headers: { authorization, "content-type": "video/mp4" },
        body: generatedBody(header, UPLOAD_BYTES),
      }),
    },
  ];

  // First an eighth of the bytes: a peak that does not grow with the upload size means the body streams.
  {
    const small = UPLOAD_BYTES / 8;
    const { result, peak } = await peakRssDuring(gateway.pid, async () => {
      const response = await fetch(`${base}/jobs?filename=small.mp4`, {
        method: "POST",
        headers: { authorization, "content-type": "video/mp4" },
        body: generatedBody(header, small),
        duplex: "half",
      } as RequestInit);
      return { response, answer: (await response.json()) as { id: string } };
    });
    const { response, answer } = result;
    if (response.status !== 202) throw new Error(`128 MiB upload answered ${response.status}`);
    report(BENCH, "peak RSS, 128 MiB raw video/mp4 upload (first, for comparison)", peak / 1e6, "MB");
    await fetch(`${base}/jobs/${answer.id}`, { method: "DELETE", headers: { authorization } });
  }

  // Each kind twice: the peak varies by a few tens of MB with when the collector runs; the higher one counts.
  // BENCH_UPLOADS=multipart (or raw): that kind alone, for a quicker look at one path.
  const only = process.env.BENCH_UPLOADS;
  let jobId = "";
  for (const upload of uploads.filter(({ label }) => !only || label.startsWith(only))) {
    const peaks: number[] = [];
    const rates: number[] = [];
    const cpus: number[] = [];
    for (let round = 0; round < 2; round++) {
      const { headers, body } = upload.init();
      const { result, peak, cpu } = await peakRssDuring(gateway.pid, async () => {
        const started = performance.now();
        const response = await fetch(`${base}${upload.path}`, {
          method: "POST",
          headers,
          body,
          duplex: "half",
        } as RequestInit);
        const answer = (await response.json()) as { id: string; source?: { bytes: number } };
        return { response, answer, seconds: (performance.now() - started) / 1000 };
      });
      const { response, answer, seconds } = result;
      if (response.status !== 202)
        throw new Error(`${upload.label} upload answered ${response.status}: ${JSON.stringify(answer)}`);
      if (answer.source?.bytes !== UPLOAD_BYTES)
        throw new Error(`${upload.label}: stored ${answer.source?.bytes} bytes, sent ${UPLOAD_BYTES}`);
      peaks.push(peak);
      rates.push(UPLOAD_BYTES / 1e6 / seconds);
      cpus.push(cpu / 1000 / (UPLOAD_BYTES / (1024 * MiB)));
      // Free the stand-in's memory before the next one (the last job stays for the reads below).
      if (jobId) await fetch(`${base}/jobs/${jobId}`, { method: "DELETE", headers: { authorization } });
      jobId = answer.id;
    }
    report(
      BENCH,
      `peak RSS, 1 GiB ${upload.label} upload (higher of 2)`,
      Math.max(...peaks) / 1e6,
      "MB",
      `< ${RSS_GOAL_MB} MB`,
    );
    report(BENCH, `upload throughput, ${upload.label} (mean of 2)`, (rates[0]! + rates[1]!) / 2, "MB/s");
    // CPU time changes less than wall time with other work on the machine.
    report(BENCH, `gateway CPU per GiB, ${upload.label} (mean of 2)`, (cpus[0]! + cpus[1]!) / 2, "s");
  }

  const reads = await drive(64, 5000, async () => {
    const response = await fetch(`${base}/jobs/${jobId}`, { headers: { authorization } });
    if (response.status !== 200) throw new Error(`GET /jobs/:id answered ${response.status}`);
    await response.arrayBuffer();
  });
  if (reads.errors) process.stderr.write(`GET /jobs/:id: ${reads.errors} errors\n`);
  report(BENCH, "GET /jobs/:id req/s (64 connections)", reads.perSecond, "req/s");
  report(BENCH, "GET /jobs/:id p50", reads.p50, "ms");
  report(BENCH, "GET /jobs/:id p99", reads.p99, "ms");
  reportLoad(BENCH, "end");
} finally {
  await stack.stop();
}
