// File names as people give them and as m3dio hands them back. Pure string work with
// no server imports, so the web page's bundle uses the same rules as the services.

/** The name a person gave a file, without directories, control characters, quotes or excess length. */
export function cleanFilename(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? "";
  const clean = base
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
    .replace(/[\u0000-\u001f\u007f"]/g, "")
    .trim()
    .slice(0, 200);
  return clean && clean !== "." && clean !== ".." ? clean : "video";
}

/** The MP3's name for a video's name: `holiday.mp4` → `holiday.mp3`. */
export function mp3Filename(videoName: string): string {
  const stem = cleanFilename(videoName).replace(/\.[^.]{1,10}$/, "") || "audio";
  return `${stem}.mp3`;
}
