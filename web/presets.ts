// The presets of the options panel: a name, what it sets in words, and the sound options it
// sends. Choosing one sets those fields under "Advanced"; changing them there may match
// another preset, or none ("Custom").
import { type Field, type Options, soundWords } from "./options.ts";

export interface Preset {
  id: string;
  name: string;
  detail: string;
  options: Options;
}

export const PRESETS: readonly Preset[] = [
  { id: "standard", name: "Standard", detail: "VBR, the server's setting", options: {} },
  {
    id: "podcast",
    name: "Podcast",
    detail: "mono, 64 kbit/s, normalized",
    options: { bitrate: 64, channels: 1, normalize: true },
  },
  { id: "music", name: "Music", detail: "VBR best", options: { quality: 0 } },
  { id: "small", name: "Small", detail: "CBR 96", options: { bitrate: 96 } },
];

/** The fields a preset sets; the others (trim, tags, track, cover) are left as they are. */
export const PRESET_FIELDS = ["quality", "bitrate", "channels", "normalize"] as const satisfies readonly Field[];

/** "Podcast (mono, 64 kbit/s, normalized)" */
export const presetName = (preset: Preset) => `${preset.name} (${preset.detail})`;

const same = (a: Options, b: Options, field: (typeof PRESET_FIELDS)[number]) =>
  field === "normalize" ? Boolean(a.normalize) === Boolean(b.normalize) : a[field] === b[field];

/** The preset whose settings `options` has exactly, if any. */
export const presetOf = (options: Options) =>
  PRESETS.find((preset) => PRESET_FIELDS.every((field) => same(preset.options, options, field)));

/** A file's sound in words: "Podcast (mono, 64 kbit/s, normalized), audio track 2" or "Custom: 128 kbit/s, mono". */
export function soundSummary(options: Options): string {
  const preset = presetOf(options);
  const rest = soundWords({ track: options.track, cover: options.cover });
  if (preset) return [presetName(preset), ...rest].join(", ");
  return `Custom: ${soundWords(options).join(", ")}`;
}
