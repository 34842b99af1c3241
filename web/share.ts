// A job's MP3 through a signed link (POST /jobs/:id/share): the player's source and the
// download are that link (same origin, so the CSP's media-src 'self' allows it; no MP3
// held in the page's memory), and "Copy share link" puts it on the clipboard for anyone
// to play or download without logging in, until the job expires. "Stop sharing" makes
// every link made so far stop working (DELETE /jobs/:id/share), the emailed one too;
// a player that is open gets a fresh link.
import type { ShareLink } from "../gateway/models.ts";
import { shareJob, unshareJob } from "./account-api.ts";
import { ApiError } from "./api.ts";
import { describeError } from "./errors.ts";
import { type Entry, jobName } from "./job-card.ts";
import { drop } from "./jobs.ts";
import { busy, view } from "./page.ts";
import { current, sessionLost } from "./session.ts";

/** The job's signed link, asked for once; a failed ask may be tried again. */
export function signedLink(entry: Entry): Promise<ShareLink> {
  if (!current) return Promise.reject(new ApiError(401, { status: 401 }));
  entry.link ??= shareJob(current.token, entry.job);
  entry.link.catch(() => (entry.link = undefined));
  return entry.link;
}

/** The link as this page loads it: its path (the page's own origin, whatever PUBLIC_URL says). */
export const samePage = (link: ShareLink) => {
  const url = new URL(link.url, location.href);
  return `${url.pathname}${url.search}`;
};

/** Says what sharing did, in the job's row and to a screen reader; an error in the row's colour. */
function note(entry: Entry, text: string, kind: "info" | "error" = "info") {
  const { note: line } = entry.parts;
  line.textContent = text;
  line.classList.toggle("error", kind === "error");
  line.hidden = false;
  view.news.textContent = `${jobName(entry.job)}: ${text}`;
}

const until = (link: ShareLink) =>
  new Date(link.expiresAt).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

/** What went wrong, in the row (the session's end goes to the login view instead). */
function failed(entry: Entry, error: unknown) {
  if (sessionLost(error)) return;
  if (error instanceof ApiError && error.status === 404) return drop(entry.job.id);
  const { title, detail } = describeError(error, "job");
  note(entry, detail ? `${title} ${detail}` : title, "error");
}

async function share(entry: Entry) {
  const button = entry.parts.share;
  busy(button, "Copying…");
  try {
    const link = await signedLink(entry);
    try {
      await navigator.clipboard.writeText(link.url);
      note(entry, `Link copied. Anyone who has it can play or download this MP3 until ${until(link)}.`);
    } catch {
      // No clipboard (refused, or an old browser): the link to copy by hand.
      note(entry, `Copy this link to share the MP3 (it works until ${until(link)}): ${link.url}`);
    }
  } catch (error) {
    failed(entry, error);
  } finally {
    busy(button, null);
  }
}

async function unshare(entry: Entry) {
  const button = entry.parts.unshare;
  busy(button, "Stopping…");
  try {
    await unshareJob(current!.token, entry.job);
    entry.link = undefined;
    note(entry, "Sharing stopped: the links made so far no longer work, the emailed one too.");
    await relink(entry);
  } catch (error) {
    failed(entry, error);
  } finally {
    busy(button, null);
  }
}

/** An open player's link stopped working: a fresh one, from where it was. */
async function relink(entry: Entry) {
  const { audio } = entry.parts;
  if (audio.hidden) return;
  const at = audio.currentTime;
  const playing = !audio.paused;
  audio.src = samePage(await signedLink(entry));
  audio.currentTime = at;
  if (playing) await audio.play().catch(() => {});
}

export const sharing = { share, unshare };
