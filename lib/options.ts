// Conversion options, chosen per job (docs/architecture.md "Conversion options"): defined
// once here and used by the gateway (parsing and validating what a client sends on every way
// in, the job view, OpenAPI), the converter (applying them with ffmpeg), the notifier (the
// email names the ones that differ from the defaults), the page and the tests.
//
// `ConversionOptions` is the stored, normalised form: trim points are seconds, numbers are
// numbers. What a client sends (strings in multipart and query, `"01:15.5"` timestamps) is
// turned into it by the gateway's parser; the job record keeps it as `options`.
import { type Static, type TLiteral, Type } from "@sinclair/typebox";

/** LAME's constant bitrates (kbit/s) an MP3 may have. */
export const BITRATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;
export type Bitrate = (typeof BITRATES)[number];
/** The longest title, artist or album tag. */
export const MAX_TAG_LENGTH = 200;
export const COVER_CHOICES = ["frame", "none"] as const;

/**
 * One literal schema per value, typed as a tuple: a union of a plain array loses its
 * static type once Elysia registers the schema as a model (its module inference reads
 * tuples only), and the job view's `options` would type as `undefined`.
 */
const literals = <const T extends readonly (string | number)[]>(values: T) =>
  values.map((value) => Type.Literal(value)) as unknown as { -readonly [K in keyof T]: TLiteral<T[K]> };

const Tag = (what: string) =>
  Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TAG_LENGTH, description: `the ID3 ${what} tag` }));

export const ConversionOptions = Type.Object(
  {
    quality: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 9, description: "LAME VBR quality, 0 (best) to 9; excludes `bitrate`" }),
    ),
    bitrate: Type.Optional(
      Type.Union(literals(BITRATES), { description: "constant bitrate in kbit/s; excludes `quality`" }),
    ),
    start: Type.Optional(Type.Number({ minimum: 0, description: "trim: where the MP3 starts, in seconds" })),
    end: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: "trim: where the MP3 ends, in seconds (> start); past the audio's end it is clamped",
      }),
    ),
    track: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 99, description: "which audio track, 0-based among the audio tracks" }),
    ),
    channels: Type.Optional(
      Type.Union([Type.Literal(1), Type.Literal(2)], { description: "1 (mono) or 2; default: as the source" }),
    ),
    normalize: Type.Optional(
      Type.Boolean({ description: "EBU R128 loudness: -16 LUFS integrated, true peak at most -1.5 dBTP" }),
    ),
    title: Tag("title"),
    artist: Tag("artist"),
    album: Tag("album"),
    cover: Type.Optional(
      Type.Union(literals(COVER_CHOICES), {
        description: "`frame`: a frame of the video becomes the front cover; `none`",
      }),
    ),
  },
  { additionalProperties: false, description: "how the MP3 comes out; every field is optional" },
);
export type ConversionOptions = Static<typeof ConversionOptions>;

/** The names a client may send, in the order the page and the docs list them. */
export const OPTION_FIELDS = Object.keys(ConversionOptions.properties) as (keyof ConversionOptions)[];

/**
 * The defaults the gateway knows and stores with the job's options (the view shows
 * options as applied). The rest are the converter's to decide, and it writes them into
 * the job's `options` when it starts: `quality` from its MP3_QUALITY, the title from the
 * source's own tag or its file name, the cover by the kind of source.
 */
export const GATEWAY_DEFAULTS = { normalize: false } as const satisfies ConversionOptions;

/** One audio track of the source, as the converter found it; `track` picks one by `index`. */
export const AudioTrack = Type.Object({
  index: Type.Integer({ minimum: 0, description: "0-based among the audio tracks: the value of the option `track`" }),
  codec: Type.String({ description: "e.g. aac, opus, mp3" }),
  channels: Type.Integer({ minimum: 0 }),
  language: Type.Optional(Type.String({ description: "the track's language tag, e.g. eng" })),
  title: Type.Optional(Type.String({ description: "the track's own title, e.g. Commentary" })),
  durationSec: Type.Number({ minimum: 0 }),
});
export type AudioTrack = Static<typeof AudioTrack>;

/** `[hh:]mm:ss[.fff]`: minutes below 60 only after hours, seconds always; at most milliseconds. */
export const TIMESTAMP_PATTERN = "^(?:(\\d+):([0-5]?\\d)|(\\d+)):([0-5]\\d)(?:\\.(\\d{1,3}))?$";
const TIMESTAMP = new RegExp(TIMESTAMP_PATTERN);
const SECONDS = /^\d+(?:\.\d+)?$/;

/** A trim point as a person writes it, seconds (`75.5`) or `[hh:]mm:ss[.fff]` (`1:15.5`), in seconds; undefined if neither. */
export function parseTimestamp(text: string): number | undefined {
  const written = text.trim();
  if (SECONDS.test(written)) return Math.round(Number(written) * 1000) / 1000;
  const match = TIMESTAMP.exec(written);
  if (!match) return undefined;
  const [, hours, minutesAfterHours, minutes, seconds, fraction] = match;
  const wholeMinutes = Number(hours ?? 0) * 60 + Number(minutesAfterHours ?? minutes);
  return wholeMinutes * 60 + Number(seconds) + Number(`0.${fraction ?? 0}`);
}

/** Seconds as `m:ss` or `h:mm:ss`, with milliseconds when there are any: 90.5 → `1:30.5`. */
export function formatTimestamp(totalSeconds: number): string {
  const millis = Math.round(totalSeconds * 1000);
  const seconds = Math.floor(millis / 1000) % 60;
  const minutes = Math.floor(millis / 60_000) % 60;
  const hours = Math.floor(millis / 3_600_000);
  const fraction =
    millis % 1000
      ? `.${String(millis % 1000)
          .padStart(3, "0")
          .replace(/0+$/, "")}`
      : "";
  const ss = `${String(seconds).padStart(2, "0")}${fraction}`;
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${ss}` : `${minutes}:${ss}`;
}

/**
 * The chosen options that differ from the defaults, each in a few words for a person:
 * `["128 kbit/s", "0:30–2:00", "mono", "normalized", "title “Live”"]`. Plain text: whoever
 * shows it in HTML escapes it.
 */
export function describeOptions(options: ConversionOptions): string[] {
  const words: string[] = [];
  if (options.bitrate !== undefined) words.push(`${options.bitrate} kbit/s`);
  if (options.quality !== undefined) words.push(`VBR quality ${options.quality}`);
  const { start, end } = options;
  if (start !== undefined && end !== undefined) words.push(`${formatTimestamp(start)}–${formatTimestamp(end)}`);
  else if (start !== undefined) words.push(`from ${formatTimestamp(start)}`);
  else if (end !== undefined) words.push(`until ${formatTimestamp(end)}`);
  if (options.track !== undefined) words.push(`audio track ${options.track + 1}`);
  if (options.channels !== undefined) words.push(options.channels === 1 ? "mono" : "stereo");
  if (options.normalize) words.push("normalized");
  for (const tag of ["title", "artist", "album"] as const)
    if (options[tag] !== undefined) words.push(`${tag} “${options[tag]}”`);
  if (options.cover === "none") words.push("no cover");
  return words;
}
