// Conversion options, chosen per job (docs/architecture.md "Conversion options"): defined
// once here and used by the gateway (parsing and validating what a client sends on every way
// in, the job view, OpenAPI), the converter (applying them with ffmpeg), the notifier (the
// email names the ones that differ from the defaults), the page and the tests.
//
// `ConversionOptions` is the stored, normalised form: trim points are seconds, numbers are
// numbers. What a client sends (strings in multipart and query, `"01:15.5"` timestamps) is
// turned into it by the gateway's parser; the job record keeps it as `options`.
import { type Static, Type } from "@sinclair/typebox";

/** LAME's constant bitrates (kbit/s) an MP3 may have. */
export const BITRATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;
export type Bitrate = (typeof BITRATES)[number];
/** The longest title, artist or album tag. */
export const MAX_TAG_LENGTH = 200;
export const COVER_CHOICES = ["frame", "none"] as const;

const Tag = (what: string) =>
  Type.Optional(Type.String({ minLength: 1, maxLength: MAX_TAG_LENGTH, description: `the ID3 ${what} tag` }));

export const ConversionOptions = Type.Object(
  {
    quality: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 9, description: "LAME VBR quality, 0 (best) to 9; excludes `bitrate`" }),
    ),
    bitrate: Type.Optional(
      Type.Union(
        BITRATES.map((kbps) => Type.Literal(kbps)),
        { description: "constant bitrate in kbit/s; excludes `quality`" },
      ),
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
      Type.Union(
        COVER_CHOICES.map((choice) => Type.Literal(choice)),
        { description: "`frame`: a frame of the video becomes the front cover; `none`" },
      ),
    ),
  },
  { additionalProperties: false, description: "how the MP3 comes out; every field is optional" },
);
export type ConversionOptions = Static<typeof ConversionOptions>;

/** The names a client may send, in the order the page and the docs list them. */
export const OPTION_FIELDS = Object.keys(ConversionOptions.properties) as (keyof ConversionOptions)[];
