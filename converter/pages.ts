// Links to video pages: a link that answers a web page (or names a known video site) is
// handed to yt-dlp, which finds the page's video and downloads its best audio-only format
// into the job's temp directory; converter/download.ts stores it like any link's video.
// yt-dlp runs as a subprocess in two steps: `--dump-json` first (the title, the length
// and the size are checked against the limits before a byte of media moves), then the
// download of exactly what was described (`--load-info-json`), its progress on stdout.
// Every request it makes goes through the job's own proxy (converter/page-proxy.ts),
// which applies the address rules of every link. yt-dlp reads no config file, cookie
// jar, cache or plugin (`--ignore-config`, `--no-cookies`, `--no-cache-dir`, a HOME and
// XDG dirs of its own in the temp dir, no proxy variables of ours), runs no ffmpeg (a
// format it would need ffmpeg or another program for is never chosen) and gets no
// argument of the user's but the URL, after `--`.
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type AllowList, LinkUnavailable } from "../lib/link.ts";
import type { Logger } from "../lib/log.ts";
import { TooLarge } from "../lib/upload.ts";
import { BadInput } from "./errors.ts";
import { clock } from "./limits.ts";
import { explainYtdlp, PAGE_FAILURES } from "./page-failures.ts";
import { startPageProxy } from "./page-proxy.ts";
import { makeJobDir, removeJobDir } from "./workdir.ts";

/** The program, found on the PATH (the image installs a pinned release: Dockerfile). */
export const YT_DLP = "yt-dlp";

/**
 * Sites whose links are pages, not files, however they answer: they go to yt-dlp at once.
 * Any other link is fetched first and goes to yt-dlp only if it answers a web page.
 */
const KNOWN_VIDEO_SITES = [
  "youtube.com",
  "youtu.be",
  "vimeo.com",
  "dailymotion.com",
  "twitch.tv",
  "soundcloud.com",
  "bandcamp.com",
  "archive.org",
  "ted.com",
];

/** True for a link to a known video site (or a subdomain of one). */
export function isKnownVideoSite(link: string): boolean {
  const host = URL.parse(link)?.hostname.toLowerCase().replace(/\.$/, "") ?? "";
  return KNOWN_VIDEO_SITES.some((site) => host === site || host.endsWith(`.${site}`));
}

/**
 * The formats yt-dlp may choose: the best audio-only one, else the best with audio, over
 * plain HTTP(S), DASH segments or HLS, which it downloads itself through the proxy. No
 * RTMP, RTSP, MMS or ffmpeg-driven HLS: those run other programs that would not use it.
 */
const FORMAT = [
  "bestaudio[protocol^=http]",
  "bestaudio[protocol=m3u8_native]",
  "best[protocol^=http]",
  "best[protocol=m3u8_native]",
].join("/");
const PROGRESS_PREFIX = "m3dio-progress";
/** The most a `--dump-json` answer may hold (a site with many formats says a few hundred KiB). */
const MAX_INFO_BYTES = 16 * 1024 * 1024;

export interface PageOptions {
  allow: AllowList;
  /** The most the media may weigh: MAX_UPLOAD_BYTES, or the owner's room when that is less. */
  maxBytes: number;
  /** MAX_AUDIO_SECONDS: a page whose video says it is longer fails before the download. */
  maxSeconds: number;
  /** Both steps together, URL_TIMEOUT_MS. */
  timeoutMs: number;
  /** Where the job's temp directory goes (TMP_DIR). */
  tmpDir: string;
  jobId: string;
  signal: AbortSignal;
  onProgress: (bytes: number, totalBytes: number | undefined) => void;
  log: Logger;
}

/** The page's video, downloaded into the temp directory (removed once `use` is done with it). */
export interface PageVideo {
  path: string;
  bytes: number;
  /** The video's title, as the page gives it, for the job's name. */
  title: string;
  /** The file's extension as yt-dlp names it (`mp4`, `webm`, `m4a`...). */
  ext: string;
  /** Which of yt-dlp's extractors found it (`generic`, `html5`, `youtube`...): for the log. */
  extractor: string;
}

/** What `--dump-json` tells of the video (its fields as yt-dlp names them). */
interface VideoInfo {
  title?: string;
  duration?: number;
  is_live?: boolean;
  filesize?: number;
  filesize_approx?: number;
  extractor?: string;
  playlist_count?: number;
}

/**
 * Runs yt-dlp on `link` through a proxy of the job's own and hands the video to `use`.
 * Fails with BadInput in words (PAGE_FAILURES), TooLarge, LinkUnavailable (worth a retry),
 * or the signal's reason when it is aborted.
 */
export async function withPageVideo<T>(
  link: string,
  options: PageOptions,
  use: (video: PageVideo) => Promise<T>,
): Promise<T> {
  const dir = await makeJobDir(options.tmpDir, options.jobId);
  const proxy = await startPageProxy({ allow: options.allow, log: options.log });
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([options.signal, deadline]);
  const run = { dir, proxy: proxy.url, signal, log: options.log };
  try {
    const video = await describeAndDownload(link, options, run).catch((error) => {
      if (options.signal.aborted) throw options.signal.reason;
      if (deadline.aborted)
        throw new BadInput(`the page did not give its video within ${clock(options.timeoutMs / 1000)}`, "link");
      // yt-dlp's own words for a refused request are a 403 or a 502: the proxy knows better.
      const refused = proxy.refusals.find((refusal) => refusal.range) ?? proxy.refusals[0];
      if (refused && (error instanceof LinkUnavailable || (error instanceof Error && "ytdlp" in error))) {
        const message = refused.range ? PAGE_FAILURES.private : refused.message.replace(/^the link/, "the page");
        throw new BadInput(message, "link");
      }
      throw error;
    });
    return await use(video);
  } finally {
    await proxy.stop();
    await removeJobDir(dir);
  }
}

interface Run {
  dir: string;
  proxy: string;
  signal: AbortSignal;
  log: Logger;
}

async function describeAndDownload(link: string, options: PageOptions, run: Run): Promise<PageVideo> {
  const infoText = await describe(link, options, run);
  const info = JSON.parse(infoText) as VideoInfo;
  checkInfo(info, options);
  const infoPath = join(run.dir, "info.json");
  await writeFile(infoPath, infoText);
  const media = join(run.dir, "media");
  await mkdir(media);
  const args = [
    "--load-info-json",
    infoPath,
    "--output",
    join(media, "video.%(ext)s"),
    "--max-filesize",
    String(options.maxBytes),
    "--newline",
    "--progress-template",
    `download:${PROGRESS_PREFIX} %(progress.downloaded_bytes)s %(progress.total_bytes)s %(progress.total_bytes_estimate)s`,
  ];
  let tooLarge = false;
  const result = await runYtdlp(args, run, (line) => {
    const progress = parseProgress(line);
    if (!progress) return;
    if (progress.bytes > options.maxBytes) tooLarge = true; // an unannounced size: yt-dlp itself would not stop
    options.onProgress(progress.bytes, progress.total);
    return tooLarge ? "stop" : undefined;
  });
  if (tooLarge || /larger than max-filesize/.test(result.stdout)) throw new TooLarge(options.maxBytes);
  if (result.code !== 0) throw explainYtdlp(result.stderr);
  const file = (await readdir(media)).find((name) => /^video\.\w+$/.test(name));
  if (!file)
    throw result.stderr.includes("ERROR:") ? explainYtdlp(result.stderr) : new BadInput(PAGE_FAILURES.noVideo, "link");
  const { size } = await stat(join(media, file));
  if (size > options.maxBytes) throw new TooLarge(options.maxBytes);
  const ext = file.slice("video.".length);
  return { path: join(media, file), bytes: size, title: pageTitle(info), ext, extractor: info.extractor ?? "" };
}

/** Step one: the page's (first) video described, the format chosen; nothing downloaded. */
async function describe(link: string, options: PageOptions, run: Run): Promise<string> {
  const args = ["--no-playlist", "--playlist-items", "1", "--dump-json", "--", link];
  let infoBytes = 0;
  const result = await runYtdlp(args, run, (line) => {
    infoBytes += line.length;
    return infoBytes > MAX_INFO_BYTES ? "stop" : undefined;
  });
  if (infoBytes > MAX_INFO_BYTES) throw new BadInput("the page describes its video at unreasonable length", "link");
  const first = result.stdout.split("\n").find((line) => line.startsWith("{"));
  if (result.code !== 0) throw explainYtdlp(result.stderr);
  if (!first) throw new BadInput(PAGE_FAILURES.noVideo, "link");
  options.log.debug({ event: "page.described" }, "page described");
  return first;
}

/** The limits that can be judged from the description: live, length, announced size. */
function checkInfo(info: VideoInfo, options: PageOptions) {
  if (info.is_live) throw new BadInput(PAGE_FAILURES.live, "link");
  if (typeof info.duration === "number" && info.duration > options.maxSeconds)
    throw new BadInput(
      `${PAGE_FAILURES.tooLong}: it lasts ${clock(info.duration)}, and this service converts up to ${clock(options.maxSeconds)}`,
      "too_long",
    );
  const size = info.filesize ?? info.filesize_approx;
  if (typeof size === "number" && size > options.maxBytes) throw new TooLarge(options.maxBytes);
}

/**
 * The video's title. yt-dlp (2023.03) numbers the <video> elements of a plain HTML5 page
 * as a list even when there is one, titling it "Page title (1)": the lone one is the page's.
 */
function pageTitle(info: VideoInfo): string {
  const title = (info.title ?? "").trim();
  const alone = info.extractor === "html5" && !(info.playlist_count && info.playlist_count > 1);
  return alone ? title.replace(/ \(1\)$/, "") : title;
}

function parseProgress(line: string): { bytes: number; total: number | undefined } | null {
  if (!line.startsWith(PROGRESS_PREFIX)) return null;
  const [bytes, total, estimate] = line.slice(PROGRESS_PREFIX.length).trim().split(/\s+/).map(Number);
  if (!Number.isFinite(bytes)) return null;
  const known = [total, estimate].find((value) => Number.isFinite(value) && value! > 0);
  return { bytes: bytes!, total: known };
}

// ── the subprocess ──────────────────────────────────────────────────────────
/** Flags of every run: nothing read from the machine or the user's environment, no ffmpeg, the proxy. */
function baseArgs(run: Run): string[] {
  return [
    "--ignore-config",
    "--no-cookies",
    "--no-cache-dir",
    "--proxy",
    run.proxy,
    "--format",
    FORMAT,
    "--ffmpeg-location",
    join(run.dir, "no-ffmpeg"), // absent: a format yt-dlp would hand to ffmpeg fails instead
    "--fixup",
    "never",
    "--no-mtime",
    "--restrict-filenames",
    "--retries",
    "2",
    "--fragment-retries",
    "2",
  ];
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Only what yt-dlp needs, and nothing that would point it elsewhere (no *_proxy variables, no HOME of ours). */
function ytdlpEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_CACHE_HOME: join(dir, "cache"),
    LANG: "C.UTF-8",
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHONIOENCODING: "utf-8",
  };
}

/** Runs yt-dlp; `onLine` sees each stdout line and may stop it. Killed when the run's signal aborts. */
async function runYtdlp(args: string[], run: Run, onLine: (line: string) => "stop" | undefined): Promise<RunResult> {
  run.signal.throwIfAborted();
  const child = Bun.spawn([YT_DLP, ...baseArgs(run), ...args], {
    cwd: run.dir,
    env: ytdlpEnv(run.dir),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const kill = () => child.kill("SIGKILL");
  run.signal.addEventListener("abort", kill, { once: true });
  try {
    const stderr = new Response(child.stderr).text();
    const kept: string[] = [];
    for await (const line of lines(child.stdout)) {
      if (!line.startsWith(PROGRESS_PREFIX) && kept.length < 10_000) kept.push(line);
      if (onLine(line) === "stop") kill();
    }
    const code = await child.exited;
    run.signal.throwIfAborted();
    return { code, stdout: kept.join("\n"), stderr: (await stderr).slice(-16_384) };
  } finally {
    run.signal.removeEventListener("abort", kill);
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    yield* parts;
  }
  if (pending) yield pending;
}

/** `yt-dlp --version`, or null when it is not installed (or does not answer within 10 s). */
export async function ytdlpVersion(): Promise<string | null> {
  try {
    const child = Bun.spawn([YT_DLP, "--version"], { stdout: "pipe", stderr: "ignore", timeout: 10_000 });
    const version = (await new Response(child.stdout).text()).trim();
    return (await child.exited) === 0 && version ? version : null;
  } catch {
    return null; // not on the PATH
  }
}
