// The emails the notifier sends: what a person reads when a conversion ends.
import escapeHtml from "escape-html";
import { cleanFilename, mp3Filename } from "../lib/filenames.ts";
import type { Job } from "../lib/jobs.ts";
import { formatBytes } from "../lib/upload.ts";

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

export function composeEmail(job: Job, config: { MAIL_FROM: string; PUBLIC_URL: string }): Email {
  const name = cleanFilename(job.source.filename);
  const mp3Name = mp3Filename(name);
  const base = { from: config.MAIL_FROM, to: job.email };
  const kept = keptUntil(job);
  if (job.status === "done" && job.audio && job.audioFileId) {
    const link = `${config.PUBLIC_URL.replace(/\/$/, "")}/jobs/${job._id}/audio`;
    const facts = [
      ["File", mp3Name],
      ["Length", formatDuration(job.audio.durationSec)],
      ["Size", formatBytes(job.audio.bytes)],
      ["MP3 file id", job.audioFileId.toHexString()],
    ];
    return {
      ...base,
      subject: SUBJECTS.done,
      text: [
        `Your MP3 of "${name}" is ready.`,
        "",
        `Download or play it: ${link}`,
        ...kept.map((line) => line.text),
        "",
        ...facts.map(([k, v]) => `${k}: ${v}`),
        "",
        "— m3dio",
      ].join("\n"),
      html: page(
        `<p>Your MP3 of <strong>${escapeHtml(name)}</strong> is ready.</p>
<p><a href="${escapeHtml(link)}">Download or play it</a></p>${kept.map((line) => line.html).join("")}
<table>${facts.map(([k, v]) => `<tr><th align="left">${k}</th><td>${escapeHtml(v!)}</td></tr>`).join("")}</table>`,
      ),
    };
  }
  const reason = job.error ?? "the conversion did not finish";
  const advice = /attempts/.test(reason)
    ? "This was on our side: please upload the video again in a little while."
    : "Please check that the file plays and has sound, or export it again (MP4 with AAC audio works everywhere), then upload it again.";
  return {
    ...base,
    subject: SUBJECTS.failed,
    text: [
      `We could not turn "${name}" into an MP3: ${reason}.`,
      "",
      advice,
      ...kept.map((l) => l.text),
      "",
      "— m3dio",
    ].join("\n"),
    html: page(
      `<p>We could not turn <strong>${escapeHtml(name)}</strong> into an MP3: ${escapeHtml(reason)}.</p>\n<p>${escapeHtml(advice)}</p>${kept.map((l) => l.html).join("")}`,
    ),
  };
}

/** Until when the job is kept (RETENTION_HOURS), as a line of text and of HTML; none without an expiry. */
function keptUntil(job: Job): { text: string; html: string }[] {
  if (!job.expiresAt) return [];
  const when = job.expiresAt.toUTCString();
  const text =
    job.status === "done"
      ? `The MP3 is kept until ${when}.`
      : `The video is kept until ${when}: until then you can retry the conversion on the page.`;
  return [{ text, html: `<p>${escapeHtml(text)}</p>` }];
}

function page(body: string): string {
  return `<!doctype html><html><body style="font-family: sans-serif">${body}<p>— m3dio</p></body></html>`;
}

function formatDuration(seconds: number): string {
  const total = Math.round(seconds);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
