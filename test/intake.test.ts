// What the gateway takes in (app.handle): audio-only files beside videos, judged by their
// first bytes (the job keeps the sniffed type, not the declared one), and file names as
// their owners typed them, whichever way they came: the exact bytes a browser's form
// sends, a raw body's Content-Disposition or X-Filename, a link's path.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import type { JobView } from "../gateway.ts";
import { drainQueue } from "./support/jobs.ts";
import { type AudioFormat, makeAudio, makeVideo } from "./support/media.ts";
import { type Stack, startStack } from "./support/stack.ts";

let stack: Stack;
let gateway: Stack["gateway"];
let movie: Uint8Array<ArrayBuffer>;
beforeAll(async () => {
  stack = await startStack();
  gateway = stack.gatewayWith({ MAX_ACTIVE_JOBS: "50" }); // a test makes many jobs that never finish
  movie = await Bun.file(await makeVideo({ seconds: 1, format: "mov" })).bytes();
});
afterAll(() => stack?.stop());

let user: Awaited<ReturnType<Stack["newUser"]>>;
beforeEach(async () => {
  user = await stack.newUser("intake");
  await drainQueue(stack.vhost.url, "video");
});

const post = (path: string, headers: Record<string, string>, body: BodyInit) =>
  stack.call(path, { method: "POST", headers: { ...user.headers, ...headers }, body }, gateway.app);

async function accepted(response: Response): Promise<JobView> {
  const text = await response.text();
  expect(response.status, text).toBe(202);
  const view = JSON.parse(text) as JobView;
  expect(await drainQueue<{ jobId: string }>(stack.vhost.url, "video", 1)).toEqual([{ jobId: view.id }]);
  return view;
}

const countStored = () =>
  Promise.all(
    ["videos.files", "videos.chunks", "jobs"].map((name) => stack.mongo.db.collection(name).countDocuments()),
  );

describe("audio-only files are accepted like videos", () => {
  const formats: [AudioFormat, string][] = [
    ["m4a", "audio/x-m4a"],
    ["mp3", "audio/mpeg"],
    ["wav", "audio/wav"],
    ["flac", "audio/flac"],
    ["ogg", "audio/ogg"],
    ["opus", "audio/ogg; codecs=opus"],
  ];
  test.each(formats)(
    "%s, as a form's file and as a raw audio/* body: the job keeps the sniffed %s",
    async (format, sniffed) => {
      const bytes = await Bun.file(await makeAudio({ format, seconds: 1 })).bytes();
      // The declared type says otherwise on purpose: what counts is what the bytes are.
      const body = new FormData();
      body.append("file", new Blob([bytes], { type: "video/mp4" }), `song.${format}`);
      const fromForm = await accepted(await post("/jobs", {}, body));
      expect(fromForm.source).toMatchObject({ kind: "upload", filename: `song.${format}`, contentType: sniffed });
      expect(fromForm.source.bytes).toBe(bytes.length);
      const stored = await gateway.jobs.get(new ObjectId(fromForm.id));
      expect(stored?.source.contentType).toBe(sniffed);

      const fromRaw = await accepted(
        await post(`/jobs?filename=raw.${format}`, { "content-type": "audio/mpeg" }, bytes),
      );
      expect(fromRaw.source).toMatchObject({ filename: `raw.${format}`, contentType: sniffed });
    },
  );

  test("a text file sent as audio is still 415, and nothing is kept", async () => {
    const before = await countStored();
    const text = new TextEncoder().encode("la la la, not a song\n".repeat(300));
    for (const response of [
      await post("/jobs", { "content-type": "audio/mpeg" }, text),
      await post("/jobs", {}, formWith(new Blob([text], { type: "audio/mpeg" }), "song.mp3")),
    ]) {
      expect(response.status).toBe(415);
      const problem = (await response.json()) as { detail: string };
      expect(problem.detail).toContain("not a video or an audio file");
      expect(problem.detail).toContain("MP3");
    }
    expect(await countStored()).toEqual(before);
    expect(await drainQueue(stack.vhost.url, "video")).toEqual([]);
  });
});

function formWith(file: Blob, name: string) {
  const body = new FormData();
  body.append("file", file, name);
  return body;
}

/** A multipart body byte for byte as a browser writes it: the filename parameter in UTF-8, `"` as %22, CR and LF as %0D and %0A. */
function browserForm(filenameParameter: string, bytes: Uint8Array) {
  const boundary = "----WebKitFormBoundaryq7bNRGx6vL3fZ2Ka";
  const head =
    `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="file"; filename="${filenameParameter}"\r\n` +
    "Content-Type: video/quicktime\r\n\r\n";
  const tail = `\r\n--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nLive\r\n--${boundary}--\r\n`;
  const body = Buffer.concat([Buffer.from(head, "utf8"), bytes, Buffer.from(tail, "utf8")]);
  return { body, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } };
}

describe("names come through as typed", () => {
  test("a browser's %22 and %0D%0A in a form's filename are decoded, then cleaned", async () => {
    // `Café – "live".mov`, as Chromium and Firefox send it.
    const quoted = browserForm("Café – %22live%22.mov", movie);
    const job = await accepted(await post("/jobs", quoted.headers, quoted.body));
    expect(job.source.filename).toBe('Café – "live".mov');
    expect(job.source.filename).not.toContain("%");
    const stored = await gateway.jobs.get(new ObjectId(job.id));
    const file = await gateway.files.stat("videos", stored!.videoFileId!);
    expect(file?.metadata?.filename).toBe('Café – "live".mov');
    expect(job.options).toEqual({ title: "Live", normalize: false });

    const broken = browserForm("two%0D%0Alines.mov", movie);
    expect((await accepted(await post("/jobs", broken.headers, broken.body))).source.filename).toBe("twolines.mov");

    // A percent sign the browser left alone stays.
    const percent = browserForm("100%25 fun.mov", movie);
    expect((await accepted(await post("/jobs", percent.headers, percent.body))).source.filename).toBe("100%25 fun.mov");
  });

  test("a raw body's name: ?filename=, else Content-Disposition (filename*), else X-Filename", async () => {
    const type = { "content-type": "video/quicktime" };
    const byQuery = await accepted(await post(`/jobs?filename=${encodeURIComponent("Café – 1.mov")}`, type, movie));
    expect(byQuery.source.filename).toBe("Café – 1.mov");
    const disposition = `attachment; filename="Cafe - 2.mov"; filename*=UTF-8''${encodeURIComponent("Café – 2.mov")}`;
    const byDisposition = await accepted(await post("/jobs", { ...type, "content-disposition": disposition }, movie));
    expect(byDisposition.source.filename).toBe("Café – 2.mov");
    const byHeader = await accepted(
      await post("/jobs", { ...type, "x-filename": encodeURIComponent('Café – "3".mov') }, movie),
    );
    expect(byHeader.source.filename).toBe('Café – "3".mov');
    // Raw UTF-8 in the header (bytes a header carries as Latin-1) reads back as UTF-8.
    const latin1 = Buffer.from("Café – 4.mov", "utf8").toString("latin1");
    const byRawHeader = await accepted(await post("/jobs", { ...type, "x-filename": latin1 }, movie));
    expect(byRawHeader.source.filename).toBe("Café – 4.mov");
    const both = await accepted(
      await post(
        "/jobs?filename=first.mov",
        { ...type, "content-disposition": 'attachment; filename="second.mov"' },
        movie,
      ),
    );
    expect(both.source.filename).toBe("first.mov");
    const none = await accepted(await post("/jobs", type, movie));
    expect(none.source.filename).toBe("video");
  });

  test("a link's name is its last path segment, percent-decoded and cleaned", async () => {
    const url = `https://example.com/talks/${encodeURIComponent('Café – "live"')}.mp4`;
    const job = await accepted(
      await post("/jobs", { "content-type": "application/json" }, JSON.stringify({ url, channels: 1 })),
    );
    expect(job.source).toMatchObject({ kind: "url", filename: 'Café – "live".mp4', url });
    expect(job.options).toEqual({ channels: 1, normalize: false });
  });
});

describe("the bytes are stored as sent", () => {
  /** `bytes` as a body of fresh pieces of the given sizes, in turn (the last size repeats), also cut at `cuts`. */
  function inPieces(bytes: Uint8Array, sizes: number[], cuts: number[] = []): ReadableStream<Uint8Array> {
    let at = 0;
    let turn = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        const size = sizes[Math.min(turn++, sizes.length - 1)]!;
        const end = Math.min(at + size, ...cuts.filter((cut) => cut > at));
        controller.enqueue(new Uint8Array(bytes.subarray(at, end))); // a copy: each piece the whole of its memory
        at = end;
      },
    });
  }
  const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  async function storedHash(view: JobView): Promise<string> {
    const job = await gateway.jobs.get(new ObjectId(view.id));
    const hash = new Bun.CryptoHasher("sha256");
    for await (const piece of gateway.files.readChunks("videos", job!.videoFileId!)) hash.update(piece);
    return hash.digest("hex");
  }
  // The video, then 3 MiB of random bytes holding "\r\n--" and the boundary's first bytes (a
  // boundary nearly met, across pieces too): freeing a body piece the file was handed as views
  // of must not free one a boundary, a header or a field still holds.
  const boundary = "----m3dioIntakeTest7MA4YWxk";
  function file(): Uint8Array {
    const filler = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024));
    const near = new TextEncoder().encode(`\r\n--${boundary.slice(0, 12)}`);
    for (let at = 1000; at + near.length < filler.length; at += 65_536 + 17) filler.set(near, at);
    return Buffer.concat([movie, filler]);
  }
  const sizes = [7, 300, 65_536, 65_531, 1, 12_345, 65_536];

  test("a multipart file sent in uneven pieces, fields before and after it, byte for byte", async () => {
    const bytes = file();
    const text = (name: string, value: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const head = `${text("bitrate", "128")}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.mov"\r\nContent-Type: video/quicktime\r\n\r\n`;
    const tail = `\r\n${text("title", "x".repeat(100))}${text("channels", "1")}--${boundary}--\r\n`;
    const body = Buffer.concat([Buffer.from(head), bytes, Buffer.from(tail)]);
    const type = { "content-type": `multipart/form-data; boundary=${boundary}` };
    // One piece holds the file's last bytes, the next part's headers and half the title.
    const fileEnd = head.length + bytes.length;
    const cuts = [fileEnd - 10, fileEnd + tail.indexOf("xxx") + 50];
    const view = await accepted(await post("/jobs", type, inPieces(body, sizes, cuts)));
    expect(view.source.bytes).toBe(bytes.length);
    expect(view.options).toMatchObject({ bitrate: 128, title: "x".repeat(100), channels: 1 });
    expect(await storedHash(view)).toBe(sha256(bytes));
  });

  test("a raw body sent in uneven pieces, byte for byte", async () => {
    const bytes = file();
    const view = await accepted(
      await post("/jobs?filename=clip.mov", { "content-type": "video/quicktime" }, inPieces(bytes, sizes)),
    );
    expect(view.source.bytes).toBe(bytes.length);
    expect(await storedHash(view)).toBe(sha256(bytes));
  });
});
