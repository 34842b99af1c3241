// Downloads of a job's MP3 with a Content-Length (GET /jobs/:id/audio, its signed links,
// /download), so a browser shows the size and a player its length, and HEAD with the same
// headers and no body. Bun's server drops a handler's Content-Length when the body is a
// stream (oven-sh/bun#10507) and sends it chunked, a Range's part too; it sends a file with
// its length. So the MP3 is copied once from GridFS to a local spool file (a few chunks at
// a time: lib/files.ts saveToFile) and answered from there, whole or a Range of it. GridFS
// files never change (a new MP3 is a new file), so the copy answers every later download
// of the file until it is evicted: unused for SPOOL_IDLE_MS, or least recently used when
// the spool would pass its budget. An MP3 larger than the whole budget (hours long at a
// high bitrate) is streamed from GridFS as before, without a length. The route has checked
// the job first, every time; the spool only saves looking the file up and reading its bytes again.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DocumentDecoration } from "elysia";
import type { ObjectId } from "mongodb";
import parseRange from "range-parser";
import type { BucketName, FileStore } from "../lib/files.ts";
import type { Logger } from "../lib/log.ts";
import { NotFound } from "../lib/problem.ts";

/** The OpenAPI text of the HEAD beside each MP3 route (`what`: which one). */
export const headDocs = (what: string): DocumentDecoration => ({
  tags: ["jobs"],
  summary: `The headers of ${what}, without the bytes`,
  description:
    "Answers as GET would (the same checks, 200 or 206 for a `Range`, 409 until the job is done) with its headers only: `Content-Length`, `Accept-Ranges: bytes`, `Content-Type`, `Content-Disposition`, `ETag`.",
  responses: {
    200: { description: "the MP3's headers", headers: SIZE_HEADERS },
    206: {
      description: "the headers of the `Range` asked for",
      headers: {
        ...SIZE_HEADERS,
        "Content-Range": { schema: { type: "string" }, example: "bytes 0-99/2886400" },
      },
    },
    401: { description: "no valid bearer token, API key or signed link" },
    403: { description: "a signed link that does not open the MP3 (changed, expired or revoked)" },
    404: { description: "no such job (among yours), or its MP3 is gone" },
    409: { description: "the job is not done (yet)" },
    416: { description: "the `Range` starts past the end" },
    422: { description: "a parameter is not valid (a job or file id, a signed link's `expires`)" },
  },
});

const SIZE_HEADERS = {
  "Content-Length": { schema: { type: "integer" as const }, description: "the bytes a GET would answer" },
  "Accept-Ranges": { schema: { type: "string" as const, enum: ["bytes"] } },
};

/** What the spool may hold (bytes): within the 256 MiB /tmp the gateway gets in k3d. */
export const SPOOL_BUDGET_BYTES = 192 * 1024 * 1024;
/** A copy unused this long is removed. */
export const SPOOL_IDLE_MS = 10 * 60_000;
/** A copy used this recently is not evicted (its answer may be about to open it). */
const IN_USE_MS = 5000;
const DIR_PREFIX = "m3dio-downloads-";

interface Copy {
  path: string;
  bytes: number;
  usedAt: number;
}

export interface DownloadOptions {
  log: Logger;
  budgetBytes?: number;
  idleMs?: number;
  /** Where the spool's directory is made (the system's temp dir). */
  root?: string;
}

export function sizedDownloads(
  files: FileStore,
  { log, budgetBytes = SPOOL_BUDGET_BYTES, idleMs = SPOOL_IDLE_MS, root = tmpdir() }: DownloadOptions,
) {
  const dir = join(root, `${DIR_PREFIX}${process.pid}-${randomBytes(4).toString("hex")}`);
  const copies = new Map<string, Copy>(); // by bucket/id
  const copying = new Map<string, Promise<Copy | undefined>>();
  let held = 0; // bytes of copies made and being made
  let sweeper: ReturnType<typeof setInterval> | undefined;

  /** Makes the directory on first use (removing those of gateways that are gone), and its sweeper. */
  function ready(): void {
    if (sweeper) return;
    removeStaleSpools(root);
    mkdirSync(dir, { recursive: true });
    spoolDirs.add(dir);
    sweeper = setInterval(() => evict((copy) => Date.now() - copy.usedAt >= idleMs), Math.min(idleMs, 60_000));
    sweeper.unref();
  }

  /** Removes the copies `doomed` picks, least recently used first, until `enough()` (if given). */
  function evict(doomed: (copy: Copy) => boolean, enough?: () => boolean): void {
    for (const [name, copy] of [...copies].sort(([, a], [, b]) => a.usedAt - b.usedAt)) {
      if (enough?.()) return;
      if (!doomed(copy)) continue;
      copies.delete(name);
      held -= copy.bytes;
      void rm(copy.path, { force: true });
    }
  }

  /** The file's copy if one is held, marked used now (so no eviction takes it from under its answer). */
  function heldCopy(bucket: BucketName, id: ObjectId): Copy | undefined {
    const copy = copies.get(`${bucket}-${id}`);
    if (copy) copy.usedAt = Date.now();
    return copy;
  }

  /** The file's local copy, made now if need be; undefined when it cannot fit in the budget. */
  async function copyOf(bucket: BucketName, id: ObjectId, bytes: number): Promise<Copy | undefined> {
    const name = `${bucket}-${id}`;
    const found = heldCopy(bucket, id);
    if (found) return found;
    const underWay = copying.get(name);
    if (underWay) return underWay;
    if (bytes > budgetBytes) return undefined;
    ready();
    evict(
      (copy) => Date.now() - copy.usedAt >= IN_USE_MS,
      () => held + bytes <= budgetBytes,
    );
    if (held + bytes > budgetBytes) return undefined;
    held += bytes;
    const path = join(dir, name);
    const making = files
      .saveToFile(bucket, id, `${path}.part`)
      .then(async () => {
        await rename(`${path}.part`, path); // whole or not at all under its final name
        const copy = { path, bytes, usedAt: Date.now() };
        copies.set(name, copy);
        log.debug({ event: "download.spooled", bucket, fileId: String(id), bytes }, "a file copied for downloads");
        return copy;
      })
      .catch(async (error) => {
        held -= bytes;
        await rm(`${path}.part`, { force: true });
        throw error;
      })
      .finally(() => copying.delete(name));
    copying.set(name, making);
    return making;
  }

  return {
    /**
     * The file as an HTTP answer with its length: 200 whole, 206 for a Range (the first range),
     * 416 past the end, headers only for HEAD; streamed without a length if it cannot be copied.
     */
    async respond(bucket: BucketName, id: ObjectId, request: Request, headers: Record<string, string>) {
      // A held copy knows the length (GridFS files never change): a player's many Range requests cost no look-up.
      const size = heldCopy(bucket, id)?.bytes ?? (await files.stat(bucket, id))?.length;
      if (size === undefined) throw new NotFound("the file is gone");
      const header = request.headers.get("range");
      const ranges = header ? parseRange(size, header, { combine: true }) : undefined;
      if (ranges === -1) return files.respond(bucket, id, request, headers); // its 416
      const range = Array.isArray(ranges) && ranges.type === "bytes" ? ranges[0] : undefined;
      const common = { ...headers, "accept-ranges": "bytes", etag: `"${id}"` };
      const part = range && { "content-range": `bytes ${range.start}-${range.end}/${size}` };
      if (request.method === "HEAD") {
        const length = range ? range.end - range.start + 1 : size;
        return new Response(null, {
          status: range ? 206 : 200,
          headers: { ...common, ...part, "content-length": String(length) },
        });
      }
      const copy = await copyOf(bucket, id, size);
      if (!copy) {
        log.info({ event: "download.unsized", bucket, fileId: String(id), bytes: size }, "too large to copy");
        return files.respond(bucket, id, request, headers);
      }
      const whole = Bun.file(copy.path);
      if (!range) return new Response(whole, { headers: common });
      return new Response(whole.slice(range.start, range.end + 1), { status: 206, headers: { ...common, ...part } });
    },
    /** Removes the spool (also done when the process exits). */
    close(): void {
      clearInterval(sweeper);
      rmSync(dir, { recursive: true, force: true });
      spoolDirs.delete(dir);
    },
  };
}
export type SizedDownloads = ReturnType<typeof sizedDownloads>;

/** Every spool of this process: removed when it exits (one listener, however many gateways a test makes). */
const spoolDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of spoolDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Removes the spools a gateway left when it died: a process that is gone, or this process's
 * own pid from before it started (a container restarted with the same /tmp and pid).
 */
function removeStaleSpools(root: string): void {
  const startedAt = Date.now() - process.uptime() * 1000;
  for (const name of readdirSync(root).filter((entry) => entry.startsWith(DIR_PREFIX))) {
    const pid = Number(name.slice(DIR_PREFIX.length).split("-")[0]);
    const path = join(root, name);
    try {
      const ours = pid === process.pid;
      if ((ours && statSync(path).mtimeMs < startedAt) || (!ours && !isAlive(pid)))
        rmSync(path, { recursive: true, force: true });
    } catch {} // another gateway removed it first, or it is not ours to remove
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM"; // alive, someone else's
  }
}
