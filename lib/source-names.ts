// The names a job's source gets from where it came, before lib/filenames.ts cleans them:
// a link's own URL (the gateway names a link job by it when it is posted) and a
// Content-Disposition header (a raw upload's, and a link's download, which the converter
// then names the job by: `…/download?id=7` answering `filename="Talk.mp4"` is "Talk.mp4").
import { parse as parseContentDisposition } from "content-disposition";
import { cleanFilename } from "./filenames.ts";

/** Path segments that name a site's page or handler rather than the video; a link's name skips them. */
const GENERIC_SEGMENTS = new Set([
  "watch",
  "view",
  "embed",
  "player",
  "play",
  "video",
  "videos",
  "download",
  "downloads",
  "dl",
  "file",
  "files",
  "media",
  "stream",
  "raw",
  "get",
  "v",
  "index",
  "index.html",
  "index.php",
]);

/**
 * The name a person would give a link's video: its last meaningful path segment, percent-
 * decoded (`/videos/Holiday%20Clip.mp4` → "Holiday Clip.mp4", but not "watch" of
 * `youtube.com/watch?v=…`), else the host.
 */
export function linkFilename(url: URL): string {
  const segments = url.pathname.split("/").filter(Boolean).map(decodeSegment);
  const meaningful = segments.findLast((segment) => {
    const word = segment.trim().toLowerCase();
    return word !== "" && !GENERIC_SEGMENTS.has(word);
  });
  return cleanFilename(meaningful ?? url.hostname);
}

/** The `filename` of a Content-Disposition header as sent (not yet cleaned); undefined without one, or for a malformed header. */
export function dispositionFilename(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  try {
    const filename = parseContentDisposition(header).parameters.filename;
    return filename === undefined ? undefined : utf8FromLatin1(filename);
  } catch {
    return undefined; // a malformed header names nothing
  }
}

/** Header values are bytes read as Latin-1: a name sent as raw UTF-8 is read back as UTF-8 if that is what it is. */
export function utf8FromLatin1(text: string): string {
  const latin1 = [...text].every((char) => char.charCodeAt(0) <= 0xff);
  if (!latin1 || !/[\u0080-\u00ff]/.test(text)) return text;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(text, "latin1"));
  } catch {
    return text;
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed percent-encoding: as written
  }
}
