// The notifier's email names the conversion options the user chose that differ from the
// defaults, in words, escaped in the HTML part; what the converter applied on top (its
// MP3_QUALITY, the resolved title) is not listed. composeEmail is pure: no services.
import { describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import type { Job } from "../lib/jobs.ts";
import type { ConversionOptions } from "../lib/options.ts";
import { generateLinkSigningKey, linkSigner } from "../lib/signed-links.ts";
import { composeEmail } from "../notifier/email.ts";

const config = { MAIL_FROM: "m3dio <mp3@example.com>", PUBLIC_URL: "https://m3dio.example" };
const links = linkSigner(generateLinkSigningKey());

function job(status: "done" | "failed", requestedOptions?: ConversionOptions, options?: ConversionOptions): Job {
  const now = new Date();
  return {
    _id: new ObjectId(),
    userId: "7",
    email: "ada@example.com",
    source: { kind: "upload", filename: "holiday.mp4", bytes: 1000, contentType: "video/mp4" },
    status,
    progress: status === "done" ? 100 : 0,
    attempts: 1,
    createdAt: now,
    updatedAt: now,
    expiresAt: new Date(now.getTime() + 3_600_000),
    ...(status === "done"
      ? { audioFileId: new ObjectId(), audio: { bytes: 4096, durationSec: 90 } }
      : { error: "the start (9:00) is past the end of the audio (2:00)" }),
    ...(requestedOptions ? { requestedOptions } : {}),
    ...(options ? { options } : {}),
  };
}

describe("the email names the chosen options", () => {
  const chosen: ConversionOptions = {
    bitrate: 128,
    start: 30,
    end: 120,
    channels: 1,
    normalize: true,
    title: 'Tom & Jerry <b>"live"</b>',
  };
  // What the converter writes back when it starts: its quality default and the full set.
  const applied: ConversionOptions = { ...chosen, cover: "frame" };

  test("in the ready email, text and HTML (escaped)", () => {
    const email = composeEmail(job("done", chosen, applied), config, links);
    expect(email.text).toContain('Options: 128 kbit/s, 0:30–2:00, mono, normalized, title “Tom & Jerry <b>"live"</b>”');
    expect(email.html).toContain(
      "128 kbit/s, 0:30–2:00, mono, normalized, title “Tom &amp; Jerry &lt;b&gt;&quot;live&quot;&lt;/b&gt;”",
    );
    expect(email.html).not.toContain("<b>");
    expect(email.subject).toBe("Your MP3 is ready");
  });

  test("in the failed email, where a trim may be why", () => {
    const email = composeEmail(job("failed", { start: 540, track: 1, cover: "none" }), config, links);
    expect(email.text).toContain("Options: from 9:00, audio track 2, no cover");
    expect(email.html).toContain("<p>Options: from 9:00, audio track 2, no cover</p>");
  });

  test("none chosen, or only defaults: no options line, whatever the converter applied", () => {
    const applied = { quality: 2, normalize: false, title: "holiday", cover: "frame" } as const;
    for (const requested of [undefined, {}, { normalize: false, cover: "frame" } as const]) {
      const email = composeEmail(job("done", requested, applied), config, links);
      expect(email.text).not.toContain("Options");
      expect(email.html).not.toContain("Options");
    }
  });

  test("a title's direction overrides and invisible characters are not shown", () => {
    const email = composeEmail(job("done", { title: "invoice\u202Eexe.mp3\u200B" }), config, links);
    expect(email.text).toContain("Options: title “invoiceexe.mp3”");
  });
});
