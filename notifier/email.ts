// The emails the notifier sends when a conversion ends: what a person reads, built with
// the template module (notifier/templates.ts: fixed subjects, values cleaned and escaped).
// The "ready" email links to the job on the page and to a signed download link that works
// without logging in until the job expires; the "failed" email's advice fits the failure's kind.
import { cleanFilename, mp3Filename } from "../lib/filenames.ts";
import type { Job, JobErrorKind } from "../lib/jobs.ts";
import { describeOptions } from "../lib/options.ts";
import type { LinkSigner } from "../lib/signed-links.ts";
import { formatBytes } from "../lib/upload.ts";
import { html, render, type Template, text } from "./templates.ts";

export interface Email {
  from: string;
  to: string;
  subject: string;
  html: string;
  text: string;
}

/**
 * Subjects are fixed text: a name a user chose (a file's, a link's) appears only in the
 * body, cleaned of control and direction-override characters, so m3dio cannot be made
 * to send a subject line of someone else's choosing (a phishing lure) to any address.
 */
export const SUBJECTS = { done: "Your MP3 is ready", failed: "Your MP3 could not be made" } as const;

/** The job on the page (web/: the page routes `#/jobs/<id>`; the gateway serves the page only at `/`). */
export const jobPageUrl = (publicUrl: string, jobId: string) => `${base(publicUrl)}/#/jobs/${jobId}`;

/** What to do next, by what went wrong (the job's `errorKind`, set where the failure arose). */
const ADVICE: Record<JobErrorKind, string> = {
  link: "Check that the link opens in a browser without logging in and leads to the video or audio itself, then send it again; or download the video and upload the file.",
  damaged:
    "Please check that the file plays and has sound, or export it again (MP4 with AAC audio works everywhere), then upload it again.",
  no_audio:
    "The file has no sound to make an MP3 of: check that it is the file you meant (screen recordings are often made without sound), then upload it again.",
  too_long: "Choose a shorter part with the start and end options, or split the recording, then send it again.",
  track_missing:
    "Choose one of the file's audio tracks (the job on the page lists them) with the track option, then send it again.",
  trim: "Choose a start (and end) inside the audio, then send it again.",
  quota: "Your storage is full: delete the MP3s you no longer need on the page, then try again.",
  internal: "This was on our side: please try again in a little while.",
  login:
    "The site shows this video only to signed-in users, and m3dio never signs in for you: download the video yourself and upload the file.",
};
/** Failures a retry of the same job may cure (the link works again, our side recovered, room was made). */
const RETRY_MAY_HELP = new Set<JobErrorKind | undefined>([undefined, "link", "internal", "quota"]);

interface ReadyData {
  name: string;
  audioLink: string;
  pageLink: string;
  keptUntil?: string;
  facts: [string, string][];
}

const readyEmail: Template<ReadyData> = {
  subject: SUBJECTS.done,
  text: (d) => [
    text`Your MP3 of "${d.name}" is ready.`,
    "",
    text`Download or play it: ${d.audioLink}`,
    text`See it on m3dio: ${d.pageLink}`,
    ...(d.keptUntil ? [text`The MP3 is kept until ${d.keptUntil}.`, "The download link works until then."] : []),
    "",
    ...d.facts.map(([label, value]) => text`${label}: ${value}`),
  ],
  html: (d) =>
    html`<p>Your MP3 of <strong>${d.name}</strong> is ready.</p>
<p><a href="${d.audioLink}">Download or play it</a> · <a href="${d.pageLink}">See it on m3dio</a></p>
${d.keptUntil ? html`<p>The MP3 is kept until ${d.keptUntil}. The download link works until then.</p>` : ""}
<table>${d.facts.map(([label, value]) => html`<tr><th align="left">${label}</th><td>${value}</td></tr>`)}</table>`,
};

interface FailedData {
  name: string;
  reason: string;
  /** The options chosen, in words; absent when none differ from the defaults. */
  options?: string;
  advice: string;
  pageLink: string;
  kept?: string;
}

const failedEmail: Template<FailedData> = {
  subject: SUBJECTS.failed,
  text: (d) => [
    text`We could not turn "${d.name}" into an MP3: ${d.reason}.`,
    ...(d.options ? [text`Options: ${d.options}`] : []),
    "",
    d.advice,
    ...(d.kept ? [d.kept] : []),
    text`See it on m3dio: ${d.pageLink}`,
  ],
  html: (d) =>
    html`<p>We could not turn <strong>${d.name}</strong> into an MP3: ${d.reason}.</p>
${d.options ? html`<p>Options: ${d.options}</p>` : ""}
<p>${d.advice}</p>${d.kept ? html`<p>${d.kept}</p>` : ""}
<p><a href="${d.pageLink}">See it on m3dio</a></p>`,
};

export function composeEmail(job: Job, config: { MAIL_FROM: string; PUBLIC_URL: string }, links: LinkSigner): Email {
  const name = cleanFilename(job.source.filename);
  const pageLink = jobPageUrl(config.PUBLIC_URL, job._id.toHexString());
  const envelope = { from: config.MAIL_FROM, to: job.email };
  const until = job.expiresAt?.toUTCString();
  // What the user chose that differs from the defaults; not what the converter applied.
  const options = describeOptions(job.requestedOptions ?? {}).join(", ") || undefined;
  if (job.status === "done" && job.audio && job.audioFileId) {
    const facts: [string, string][] = [
      ["File", mp3Filename(name)],
      ["Length", formatDuration(job.audio.durationSec)],
      ["Size", formatBytes(job.audio.bytes)],
      ["MP3 file id", job.audioFileId.toHexString()],
      ...(options ? [["Options", options] as [string, string]] : []),
    ];
    const audioLink = `${base(config.PUBLIC_URL)}${links.audioPath(job).path}`;
    return { ...envelope, ...render(readyEmail, { name, audioLink, pageLink, keptUntil: until, facts }) };
  }
  const reason = job.error ?? "the conversion did not finish";
  const kind = job.errorKind ?? (/attempts/.test(reason) ? "internal" : undefined);
  const advice = kind ? ADVICE[kind] : ADVICE.damaged;
  const kept =
    until &&
    (RETRY_MAY_HELP.has(kind)
      ? `The video is kept until ${until}: until then you can retry the conversion on the page.`
      : `The job is kept until ${until}.`);
  return { ...envelope, ...render(failedEmail, { name, reason, options, advice, pageLink, kept: kept || undefined }) };
}

const base = (publicUrl: string) => publicUrl.replace(/\/+$/, "");

function formatDuration(seconds: number): string {
  const total = Math.round(seconds);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
