// The conversion options as clients send them, on every way in (multipart fields beside
// `file`, JSON fields beside `url`, query parameters of a raw body, and the aliases),
// turned into the one model, ConversionOptions (lib/options.ts), or into what is wrong
// with them, field by field. Forms and queries carry only text, so text is parsed
// everywhere: numbers ("75.5"), trim points ("1:15.5"), booleans ("true", "false", "1",
// "0"); JSON may also give numbers and booleans as such. An empty value is the same as
// leaving the field out: a browser sends its form's empty inputs too.
import {
  BITRATES,
  COVER_CHOICES,
  type ConversionOptions,
  GATEWAY_DEFAULTS,
  MAX_TAG_LENGTH,
  OPTION_FIELDS,
  parseTimestamp,
} from "../lib/options.ts";
import { type FieldError, invalidFields } from "../lib/problem.ts";

export type { FieldError };
/** One field as it came: its name and its value (text from a form or query; anything from JSON). */
export type OptionEntry = readonly [name: string, value: unknown];

type Parsed<T> = { value: T } | { error: string };
type OptionParsers = { [K in keyof ConversionOptions]-?: (value: unknown) => Parsed<ConversionOptions[K]> };

/** A number as JSON gives it or as text writes it (digits, an optional fraction); undefined otherwise. */
function numberIn(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && /^\d+(?:\.\d+)?$/.test(value.trim())) return Number(value.trim());
  return undefined;
}

const wholeNumber = (min: number, max: number, message: string) => (value: unknown) => {
  const number = numberIn(value);
  return number !== undefined && Number.isInteger(number) && number >= min && number <= max
    ? { value: number }
    : { error: message };
};

const trimPoint = (value: unknown): Parsed<number> => {
  const seconds = typeof value === "string" ? parseTimestamp(value) : numberIn(value);
  return seconds !== undefined && seconds >= 0
    ? { value: seconds }
    : { error: "must be seconds (75.5) or [hh:]mm:ss[.fff] (1:15.5)" };
};

const BOOLEANS: Record<string, boolean> = { true: true, "1": true, false: false, "0": false };

/** Tags are one line of text: no control characters or line breaks (ID3 frames and the email show them as they are). */
const tag = (value: unknown): Parsed<string> => {
  if (typeof value !== "string") return { error: "must be text" };
  const text = value.trim();
  if (text.length > MAX_TAG_LENGTH) return { error: `must be at most ${MAX_TAG_LENGTH} characters` };
  if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(text)) return { error: "must be one line of text, without control characters" };
  return { value: text };
};

const PARSERS: OptionParsers = {
  quality: wholeNumber(0, 9, "must be a whole number from 0 (best) to 9"),
  bitrate: (value) => {
    const kbps = numberIn(value);
    return (BITRATES as readonly number[]).includes(kbps as number)
      ? { value: kbps as (typeof BITRATES)[number] }
      : { error: `must be one of ${BITRATES.join(", ")} (kbit/s)` };
  },
  start: trimPoint,
  end: trimPoint,
  track: wholeNumber(0, 99, "must be a whole number from 0 (the first audio track) to 99"),
  channels: (value) => {
    const count = numberIn(value);
    return count === 1 || count === 2 ? { value: count } : { error: "must be 1 (mono) or 2 (stereo)" };
  },
  normalize: (value) => {
    const flag = typeof value === "boolean" ? value : BOOLEANS[String(value).trim().toLowerCase()];
    return typeof value !== "object" && flag !== undefined
      ? { value: flag }
      : { error: "must be true or false (or 1 or 0)" };
  },
  title: tag,
  artist: tag,
  album: tag,
  cover: (value) => {
    const choice = typeof value === "string" ? value.trim().toLowerCase() : undefined;
    return (COVER_CHOICES as readonly unknown[]).includes(choice)
      ? { value: choice as (typeof COVER_CHOICES)[number] }
      : { error: `must be ${COVER_CHOICES.join(" or ")}` };
  },
};

const isOption = (name: string): name is keyof ConversionOptions => (OPTION_FIELDS as string[]).includes(name);
const isEmpty = (value: unknown) => value === null || (typeof value === "string" && value.trim() === "");

/**
 * The options in `entries` (every one must be an option: the caller leaves out the fields
 * its way in carries besides, such as `file`, `url` or `filename`), and every error: an
 * unknown field, a field given twice, a bad value, `quality` with `bitrate`, `end` not
 * after `start`. Options are only good when `errors` is empty.
 */
export function parseOptions(entries: Iterable<OptionEntry>): { options: ConversionOptions; errors: FieldError[] } {
  const options: Record<string, unknown> = {};
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    if (!isOption(name)) {
      errors.push({ field: name, message: `is not an option; the options are ${OPTION_FIELDS.join(", ")}` });
      continue;
    }
    if (seen.has(name)) {
      errors.push({ field: name, message: "is given more than once" });
      continue;
    }
    seen.add(name);
    if (isEmpty(value)) continue;
    const parsed = PARSERS[name](value);
    if ("error" in parsed) errors.push({ field: name, message: parsed.error });
    else options[name] = parsed.value;
  }
  errors.push(...crossFieldErrors(options as ConversionOptions));
  return { options: options as ConversionOptions, errors };
}

/** The rules between fields, for values that are good on their own. */
function crossFieldErrors({ quality, bitrate, start, end }: ConversionOptions): FieldError[] {
  const errors: FieldError[] = [];
  if (quality !== undefined && bitrate !== undefined) {
    errors.push({ field: "quality", message: "excludes bitrate: choose one" });
    errors.push({ field: "bitrate", message: "excludes quality: choose one" });
  }
  if (end !== undefined && end <= (start ?? 0))
    errors.push({ field: "end", message: `must be after start (${start ?? 0} s)` });
  return errors;
}

/** The options a job is stored with: the user's choice with the defaults the gateway knows filled in. */
export const withGatewayDefaults = (chosen: ConversionOptions): ConversionOptions => ({
  ...GATEWAY_DEFAULTS,
  ...chosen,
});

/** The 422 for `errors`: every field named, in the words of every other 422 (lib/problem.ts). */
export const badOptions = invalidFields;
