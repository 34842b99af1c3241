// File names as people give them and as m3dio hands them back. Pure string work with
// no server imports, so the web page's bundle uses the same rules as the services.

/**
 * Characters a name must not carry: control characters (C0, DEL, C1), format characters
 * (bidirectional overrides and isolates, which make `invoice\u202Eexe.mp4` show as
 * "invoice4pm.exe", zero-width spaces and joiners, the BOM, soft hyphens), line and
 * paragraph separators. Quotes stay (names come through as typed): every header that
 * carries a name is written by the content-disposition library, which escapes them.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** Text from outside (a name, a reason) without control, bidirectional-override or invisible characters. */
export const withoutInvisible = (text: string): string => text.replace(INVISIBLE, "");

/** The name a person gave a file, without directories, unsafe or invisible characters, or excess length. */
export function cleanFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  // At most 200 characters, counted as code points so an emoji is never cut in half.
  const clean = [...base.replace(INVISIBLE, "").trim()].slice(0, 200).join("").trim();
  return clean && clean !== "." && clean !== ".." ? clean : "video";
}

/** The MP3's name for a video's name: `holiday.mp4` → `holiday.mp3`. */
export function mp3Filename(videoName: string): string {
  const stem = cleanFilename(videoName).replace(/\.[^.]{1,10}$/, "") || "audio";
  return `${stem}.mp3`;
}
