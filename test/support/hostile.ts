// What an attacker sends the converter, made during the run: hours of silence in a few
// hundred kilobytes (with an honest or a lying length), and text files that ffmpeg, left
// to guess, reads as manifests naming other files or URLs. And a look at the processes a
// converter in this test process runs for a job, to see its ffmpeg end.
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./media.ts";

const workDir = mkdtemp(join(tmpdir(), "m3dio-hostile-"));
let counter = 0;

/**
 * `seconds` of silence as FLAC in Matroska: 10 hours are about 250 KB and take ffmpeg a
 * few seconds to make. `claimSeconds` rewrites the header's Duration so the file says it
 * is that long while it holds all `seconds`.
 */
export async function makeSilence(seconds: number, { claimSeconds }: { claimSeconds?: number } = {}) {
  const path = join(await workDir, `silence-${++counter}.mkv`);
  await run([
    "ffmpeg",
    ...["-hide_banner", "-loglevel", "error", "-y"],
    ...["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono:nb_samples=65535", "-t", String(seconds)],
    ...["-c:a", "flac", "-frame_size", "65535", path],
  ]);
  if (claimSeconds === undefined) return path;
  const bytes = Buffer.from(await Bun.file(path).arrayBuffer());
  // Segment Info's Duration: EBML id 0x4489, an 8-byte float, in milliseconds (the default TimecodeScale).
  const at = bytes.indexOf(Buffer.from([0x44, 0x89, 0x88]));
  if (at < 0) throw new Error("no Duration element in the Matroska header");
  bytes.writeDoubleBE(claimSeconds * 1000, at + 3);
  await Bun.write(path, bytes);
  return path;
}

/** A few seconds of AAC in an .m4a: the file an attack wants the converter to read. */
export async function makeSecretAudio(dir: string, name: string, seconds = 2) {
  const path = join(dir, name);
  await run([
    "ffmpeg",
    ...["-hide_banner", "-loglevel", "error", "-y"],
    ...["-f", "lavfi", "-i", `sine=frequency=660:duration=${seconds}`, "-c:a", "aac", path],
  ]);
  return path;
}

// `<!--free-->`: bytes 4-7 read "free", a QuickTime atom, so file-type (the gateway's
// sniffer) calls it video/quicktime, while ffmpeg's DASH probe finds the <MPD> after it.
const DASH_HEAD = '<!--free--><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"';
const DASH_AUDIO = '<AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="64000" codecs="mp4a.40.2">';

/** A DASH manifest, disguised as a QuickTime video, whose one segment is `url` (file:// or http://). */
export const dashManifest = (url: string) =>
  Buffer.from(
    `${DASH_HEAD} profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" mediaPresentationDuration="PT2S"><Period>` +
      `${DASH_AUDIO}<BaseURL>${url}</BaseURL><SegmentBase/></Representation></AdaptationSet></Period></MPD>\n`,
  );

/**
 * A DASH manifest, disguised likewise, that reads a numbered sequence of files in `dir`
 * (`prefix`001.m4a, 002, ...): the image2 pattern idea, through a template.
 */
export const dashSequence = (dir: string, prefix: string, count: number) =>
  Buffer.from(
    `${DASH_HEAD} profiles="urn:mpeg:dash:profile:isoff-live:2011" mediaPresentationDuration="PT${count * 2}S"><Period>` +
      `${DASH_AUDIO}<BaseURL>file://${dir}/</BaseURL><SegmentTemplate media="${prefix}$Number%03d$.m4a" ` +
      'startNumber="1" duration="2" timescale="1"/></Representation></AdaptationSet></Period></MPD>\n',
  );

/** An HLS playlist of one segment, `url`. */
export const hlsPlaylist = (url: string) =>
  Buffer.from(`#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${url}\n#EXT-X-ENDLIST\n`);

/** An ffconcat list of `names` (relative names are the ones its safe mode lets through). */
export const ffconcatList = (...names: string[]) =>
  Buffer.from(`ffconcat version 1.0\n${names.map((name) => `file ${name}\n`).join("")}`);

/** What ffprobe, left to guess as the converter used to, makes of `path`: the format it picked, or its error. */
export async function unrestrictedProbe(path: string): Promise<{ format?: string; audioSeconds?: number }> {
  const child = Bun.spawn(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", path], {
    stdout: "pipe",
    stderr: "ignore",
  });
  const [code, out] = await Promise.all([child.exited, new Response(child.stdout).text()]);
  if (code !== 0) return {};
  const { format } = JSON.parse(out) as { format: { format_name: string; duration?: string } };
  return { format: format.format_name, audioSeconds: Number(format.duration) };
}

/**
 * The ffmpeg and ffprobe processes working on `jobId` (their arguments name its temp dir,
 * `m3dio-job-<pid>-<jobId>-…`), from /proc.
 */
export function processesFor(jobId: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // ended while we looked
    }
    if (/ff(mpeg|probe)$/.test(args[0] ?? "") && args.some((arg) => arg.includes(`-${jobId}-`)))
      found.push(`${entry} ${args[0]}`);
  }
  return found;
}
