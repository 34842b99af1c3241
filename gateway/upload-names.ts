// The name of an uploaded file as its owner typed it, whichever way it came, before
// lib/filenames.ts cleans it. Each way has its own encoding to undo:
// - a browser's multipart form (the WHATWG "multipart/form-data encoding algorithm")
//   writes `"` as %22 and CR, LF as %0D, %0A in the filename parameter, and nothing
//   else (so `%` itself is not escaped, and only those three are decoded); curl does
//   the same since 7.81;
// - a raw body names itself by `?filename=` (percent-decoded with the query), by
//   `Content-Disposition: attachment; filename*=UTF-8''…` (RFC 6266/8187), or by
//   `X-Filename` (percent-encoded UTF-8, or raw UTF-8 bytes, which arrive as Latin-1);
// - a link's name is its last meaningful path segment, percent-decoded, until its download
//   names it (lib/source-names.ts).
import { cleanFilename } from "../lib/filenames.ts";
import { dispositionFilename, utf8FromLatin1 } from "../lib/source-names.ts";

/** The three escapes a browser writes into a multipart filename, and what they stand for. */
const FORM_ESCAPES: Record<string, string> = { "%22": '"', "%0D": "\r", "%0A": "\n" };

/** A multipart part's filename, its browser escapes undone, cleaned. */
export function formFilename(raw: string): string {
  return cleanFilename(raw.replace(/%(?:22|0D|0A)/gi, (code) => FORM_ESCAPES[code.toUpperCase()]!));
}

/** The name a raw body gives itself: `?filename=`, else Content-Disposition's, else X-Filename; cleaned. */
export function rawBodyFilename(request: Request, queryFilename: string | undefined): string {
  const named =
    queryFilename ?? dispositionFilename(request.headers.get("content-disposition")) ?? headerFilename(request);
  return cleanFilename(named ?? "");
}

function headerFilename(request: Request): string | undefined {
  const header = request.headers.get("x-filename");
  if (header === null) return undefined;
  try {
    return utf8FromLatin1(decodeURIComponent(header));
  } catch {
    return utf8FromLatin1(header); // malformed percent-encoding: as written
  }
}
