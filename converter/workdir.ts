// Temp directories for work on one job (a video spooled for ffmpeg, say), named after
// the process that made them, so a restarted worker can tell a dead worker's leftovers
// (SIGKILL, OOM: no `finally` ran) from a live one's and remove them.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../lib/log.ts";

const PREFIX = "m3dio-job-";

/** A fresh directory under `root` for `jobId`, owned by this process. */
export const makeJobDir = (root: string, jobId: string): Promise<string> =>
  mkdtemp(join(root, `${PREFIX}${process.pid}-${jobId}-`));

/** Removes a job's directory and everything in it; one already gone is fine. */
export const removeJobDir = (dir: string): Promise<void> => rm(dir, { recursive: true, force: true });

/** Removes the job directories under `root` whose process is gone (or is this one, just started). */
export async function removeDeadWorkersDirs(root: string, log: Logger): Promise<void> {
  const entries = await readdir(root).catch(() => [] as string[]);
  for (const entry of entries) {
    const pid = Number(entry.slice(PREFIX.length).split("-")[0]);
    if (!entry.startsWith(PREFIX) || !pid) continue;
    if (pid !== process.pid && isAlive(pid)) continue;
    await removeJobDir(join(root, entry));
    log.info({ event: "workdir.removed", dir: entry }, "removed a dead worker's temp directory");
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
