// How the page writes sizes, durations and a link's host.

export function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** 185 → "3:05", 3725 → "1:02:05" */
export function clock(seconds: number): string {
  const total = Math.round(seconds);
  const [hours, minutes, secs] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const two = (n: number) => String(n).padStart(2, "0");
  return hours ? `${hours}:${two(minutes)}:${two(secs)}` : `${minutes}:${two(secs)}`;
}

export const hostOf = (url: string | undefined) => {
  try {
    return url ? new URL(url).host : null;
  } catch {
    return null;
  }
};

/** 1 → "1st", 2 → "2nd", 13 → "13th", 22 → "22nd" */
export function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th")}`;
}

/** A queued job's place: 1 → "Next in line", 3 → "3rd in line". */
export const placeInLine = (position: number) => (position === 1 ? "Next in line" : `${ordinal(position)} in line`);

/**
 * A trim point as a person writes it, in seconds: "75.5", "1:15.5", "1:02:03". Undefined
 * for an empty text; NaN for one that is not a time.
 */
export function parseTime(text: string): number | undefined {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const parts = trimmed.split(":");
  const seconds = parts.pop()!;
  const wholes = parts.every((part) => /^\d+$/.test(part));
  if (parts.length > 2 || !wholes || !/^\d+(\.\d+)?$/.test(seconds)) return Number.NaN;
  // After the first part, minutes and seconds stay under 60: "1:75" is a typo, not 2:15.
  const units = [...parts.map(Number), Number(seconds)];
  if (units.slice(1).some((unit) => unit >= 60)) return Number.NaN;
  return units.reduce((total, unit) => total * 60 + unit, 0);
}

/** Seconds as a trim point is written: 75.5 → "1:15.5", 4 → "0:04". */
export function timeText(seconds: number): string {
  const millis = Math.round(seconds * 1000);
  const rest = millis % 1000;
  const whole = clock((millis - rest) / 1000);
  return rest ? `${whole}.${String(rest).padStart(3, "0").replace(/0+$/, "")}` : whole;
}

/**
 * The tags a file's name suggests: "Artist - Title.mp4" → both, "Holiday in Rome.mp4" →
 * the title alone; the extension and underscores dropped.
 */
export function tagsFromName(filename: string): { title?: string; artist?: string } {
  const base = filename
    .replace(/\.[^.\s]{1,5}$/, "")
    .replace(/_/g, " ")
    .trim();
  const dash = /^(.+?)\s+[-–—]\s+(.+)$/.exec(base);
  if (dash) return { artist: dash[1]!.trim(), title: dash[2]!.trim() };
  return base ? { title: base } : {};
}
