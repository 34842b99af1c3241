// `m3dio jobs`, `m3dio download <id>`, `m3dio delete <id>`, and saving a job's MP3 (which
// `convert` does too): to the name the server gives it (the source's name as .mp3, a free
// one if that is taken), to -o's path, or with `-o -` to stdout.
import { once } from "node:events";
import { existsSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import type { Command } from "commander";
import type { JobPage, JobView } from "../gateway/models.ts";
import { mp3Filename } from "../lib/filenames.ts";
import { formatBytes } from "../lib/upload.ts";
import type { Api, GlobalOptions } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";
import { onInterrupt } from "./interrupt.ts";
import { progressBar, say } from "./progress.ts";
import { minute, printJson, table } from "./table.ts";

const PAGE_SIZE = 100;

export function jobCommands(program: Command, connect: () => { api: Api; globals: GlobalOptions }): void {
  program
    .command("jobs")
    .description("your jobs, newest first")
    .option("-n, --limit <count>", "at most this many", "20")
    .option("--all", "every job (page after page)")
    .option("--json", "as JSON: an array of jobs, as GET /jobs/:id answers them")
    .action(async (options: { limit: string; all?: boolean; json?: boolean }) => {
      const limit = options.all ? Number.POSITIVE_INFINITY : Number(options.limit);
      if (!options.all && !(Number.isInteger(limit) && limit > 0))
        throw new CliError(EXIT.usage, "--limit must be a whole number above 0");
      const jobs = await listJobs(connect().api, limit);
      if (options.json) printJson(jobs);
      else process.stdout.write(jobTable(jobs));
    });

  program
    .command("download <id>")
    .description("save a finished job's MP3")
    .option("-o, --output <path>", "where to save it (- for stdout); default: the source's name as .mp3")
    .action(async (id: string, options: { output?: string }) => {
      const { api, globals } = connect();
      const job = await api.json<JobView>(`/jobs/${encodeURIComponent(id)}`, "could not read the job");
      const saved = await saveAudio(api, job, options.output, globals.quiet);
      if (saved !== "-") process.stdout.write(`${saved}\n`);
    });

  program
    .command("delete <id>")
    .description("delete a job, its video and its MP3 (a conversion under way stops)")
    .action(async (id: string) => {
      const { api, globals } = connect();
      await api.call(`/jobs/${encodeURIComponent(id)}`, "could not delete the job", { method: "DELETE" });
      say(globals.quiet, `Deleted job ${id}`);
    });
}

/** Up to `limit` jobs, newest first, following `nextCursor` as far as needed. */
async function listJobs(api: Api, limit: number): Promise<JobView[]> {
  const jobs: JobView[] = [];
  let cursor: string | undefined;
  do {
    const query = new URLSearchParams({ limit: String(Math.min(PAGE_SIZE, limit - jobs.length)) });
    if (cursor) query.set("cursor", cursor);
    const page = await api.json<JobPage>(`/jobs?${query}`, "could not list the jobs");
    jobs.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && jobs.length < limit);
  return jobs;
}

/** A job's state in a few words: `done`, `converting 42%`, `queued (3rd)`. */
export function stateOf(job: JobView): string {
  if (job.status === "queued") return job.queuePosition ? `queued #${job.queuePosition}` : "queued";
  if (job.status === "converting") return `${job.phase ?? "converting"} ${job.progress}%`;
  return job.status;
}

function jobTable(jobs: JobView[]): string {
  return table(
    ["ID", "STATUS", "CREATED (UTC)", "MP3", "SOURCE"],
    jobs.map((job) => [
      job.id,
      stateOf(job),
      minute(job.createdAt),
      job.audio ? formatBytes(job.audio.bytes) : "",
      job.source.filename,
    ]),
  );
}

/**
 * Saves the job's MP3 to `output` (`-`: stdout), or next to where the command runs under the
 * source's name as .mp3 (a free variant of it when that exists). A file is written whole or
 * not at all: into a partial file first, renamed when the last byte is in. Answers the path.
 */
export async function saveAudio(api: Api, job: JobView, output: string | undefined, quiet?: boolean) {
  const answer = await api.call(`/jobs/${job.id}/audio`, "could not download the MP3", { timeoutMs: null });
  const total = Number(answer.headers.get("content-length") ?? job.audio?.bytes ?? 0);
  const body = answer.body;
  if (!body) throw new CliError(EXIT.unavailable, "the server sent no MP3");
  if (output === "-") {
    // A slow reader (a pipe to a player) holds the download back, rather than memory filling up.
    for await (const chunk of body) if (!process.stdout.write(chunk)) await once(process.stdout, "drain");
    return "-";
  }
  const path = output ?? freeName(mp3Filename(job.source.filename));
  const partial = join(dirname(path), `.${basename(path)}.${process.pid}.partial`);
  const bar = progressBar(quiet, "download", total, "bytes");
  const forget = onInterrupt(() => rmSync(partial, { force: true }));
  try {
    const writer = Bun.file(partial).writer();
    let written = 0;
    for await (const chunk of body) {
      writer.write(chunk);
      written += chunk.byteLength;
      bar.update(written);
    }
    await writer.end();
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    if (error instanceof CliError) throw error;
    throw new CliError(EXIT.unavailable, `could not save ${path}: ${(error as Error).message}`);
  } finally {
    forget();
    bar.stop();
  }
  say(quiet, `Saved ${path} (${formatBytes(total)})`);
  return path;
}

/** `name.mp3`, else `name (2).mp3`, `name (3).mp3`…: the first that does not exist. */
function freeName(name: string): string {
  const extension = extname(name);
  const stem = name.slice(0, name.length - extension.length);
  let candidate = name;
  for (let n = 2; existsSync(candidate); n++) candidate = `${stem} (${n})${extension}`;
  return candidate;
}
