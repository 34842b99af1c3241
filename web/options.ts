// The conversion options as form controls, built from the one model (lib/options.ts: its
// fields, bitrates, limits and cover choices), and the options as words. The shared panel
// (options-panel.ts) and each chosen file (staging.ts) hold one such form each.
import { BITRATES, COVER_CHOICES, ConversionOptions, MAX_TAG_LENGTH } from "../lib/options.ts";
import { h } from "./dom.ts";
import { parseTime, timeText } from "./format.ts";

export type Options = ConversionOptions;
export type Field = keyof ConversionOptions;
type Control = HTMLInputElement | HTMLSelectElement;
type Value = Options[Field];

/** How the page groups the fields; every field of the model is in one (web-client.test.ts checks). */
export const FIELD_GROUPS = {
  sound: ["quality", "bitrate", "channels", "normalize", "track", "cover"],
  trim: ["start", "end"],
  tags: ["title", "artist", "album"],
} as const satisfies Record<string, readonly Field[]>;
export type Group = keyof typeof FIELD_GROUPS;
export const ALL_FIELDS = Object.values(FIELD_GROUPS).flat() as Field[];
const LEGENDS: Record<Group, string> = { sound: "Sound", trim: "Trim", tags: "Tags" };

const TIME_HINT = "Write seconds (75.5) or minutes and seconds (1:15.5).";
const { quality: QUALITY, track: TRACK } = ConversionOptions.properties;
const COVER_LABELS: Record<(typeof COVER_CHOICES)[number], string> = {
  frame: "A frame of the video",
  none: "None",
};

/** One field's control: how it is made, read (NaN: not valid) and written. */
interface Spec {
  label: string;
  hint?: string;
  make(): Control;
  read(control: Control): Value | number;
  write(control: Control, value: Value): void;
}

const choice = (pairs: [string, string][]) => () =>
  h("select", {}, ...pairs.map(([value, label]) => h("option", { value }, label)));
const chosen = (control: Control) => (control.value === "" ? undefined : Number(control.value));
const setText = (control: Control, value: Value) => {
  control.value = value === undefined ? "" : String(value);
};
const qualities = Array.from({ length: QUALITY.maximum! - QUALITY.minimum! + 1 }, (_, i) => QUALITY.minimum! + i);

const time =
  (placeholder: string): Spec["make"] =>
  () =>
    h("input", { type: "text", autocomplete: "off", placeholder, spellcheck: false });
const tag = (): Control => h("input", { type: "text", maxLength: MAX_TAG_LENGTH, autocomplete: "off" });
const readTime = (control: Control) => parseTime(control.value);
const writeTime = (control: Control, value: Value) => {
  control.value = typeof value === "number" ? timeText(value) : "";
};
const readTag = (control: Control) => control.value.trim() || undefined;

const SPECS: Record<Field, Spec> = {
  quality: {
    label: "VBR quality",
    hint: "0 is the best, 9 the smallest.",
    make: choice([
      ["", "Server default"],
      ...qualities.map((q): [string, string] => [String(q), q === 0 ? "0 (best)" : String(q)]),
    ]),
    read: chosen,
    write: setText,
  },
  bitrate: {
    label: "Constant bitrate",
    make: choice([["", "None (VBR)"], ...BITRATES.map((kbps): [string, string] => [String(kbps), `${kbps} kbit/s`])]),
    read: chosen,
    write: setText,
  },
  channels: {
    label: "Channels",
    make: choice([
      ["", "As the source"],
      ["1", "Mono"],
      ["2", "Stereo"],
    ]),
    read: chosen,
    write: setText,
  },
  normalize: {
    label: "Normalize loudness",
    hint: "EBU R128: −16 LUFS, peaks at most −1.5 dBTP.",
    make: () => h("input", { type: "checkbox" }),
    read: (control) => (control as HTMLInputElement).checked || undefined,
    write: (control, value) => {
      (control as HTMLInputElement).checked = value === true;
    },
  },
  track: {
    label: "Audio track",
    hint: "1 is the first; empty: the file's main track.",
    make: () =>
      h("input", { type: "number", min: "1", max: String(TRACK.maximum! + 1), step: "1", inputMode: "numeric" }),
    // shown from 1, sent from 0 as the model counts
    read: (control) =>
      control.value === "" ? undefined : control.validity.valid ? Number(control.value) - 1 : Number.NaN,
    write: (control, value) => setText(control, typeof value === "number" ? value + 1 : undefined),
  },
  cover: {
    label: "Cover image",
    make: choice([["", "Default"], ...COVER_CHOICES.map((c): [string, string] => [c, COVER_LABELS[c]])]),
    read: (control) => control.value || undefined,
    write: setText,
  },
  start: { label: "Start", make: time("0:00"), read: readTime, write: writeTime },
  end: { label: "End", make: time("the end"), read: readTime, write: writeTime },
  title: { label: "Title", make: tag, read: readTag, write: setText },
  artist: { label: "Artist", make: tag, read: readTag, write: setText },
  album: { label: "Album", make: tag, read: readTag, write: setText },
};

export interface OptionsForm {
  groups: Record<Group, HTMLFieldSetElement>;
  controls: Record<Field, Control>;
  /** The options the controls show; `invalid` is the first control that holds no valid value. */
  read(): { options: Options; invalid?: Control };
  /** Shows `values` in the controls of `fields` (all by default); a field absent from `values` is emptied. */
  write(values: Options, fields?: readonly Field[]): void;
}

/** A form of every option, ids starting with `prefix`; `changed` hears which fields a person changed. */
export function optionsForm(prefix: string, changed: (fields: Field[]) => void): OptionsForm {
  const controls = {} as Record<Field, Control>;
  const fieldset = (group: Group) => {
    const rows = FIELD_GROUPS[group].map((field) => fieldRow(prefix, field, (control) => (controls[field] = control)));
    return h("fieldset", { class: `options-group ${group}` }, h("legend", {}, LEGENDS[group]), ...rows);
  };
  const groups = { sound: fieldset("sound"), trim: fieldset("trim"), tags: fieldset("tags") };
  for (const field of ALL_FIELDS) {
    const control = controls[field];
    control.addEventListener(
      control instanceof HTMLSelectElement || control.type === "checkbox" ? "change" : "input",
      () => changed(excludeOther(controls, field)),
    );
  }
  return {
    groups,
    controls,
    read: () => readForm(controls),
    write(values, fields = ALL_FIELDS) {
      for (const field of fields) SPECS[field].write(controls[field], values[field]);
    },
  };
}

function fieldRow(prefix: string, field: Field, keep: (control: Control) => void) {
  const spec = SPECS[field];
  const control = spec.make();
  control.id = `${prefix}-${field}`;
  control.name = field;
  keep(control);
  const label = h("label", { htmlFor: control.id }, spec.label);
  const hint = spec.hint ? h("span", { class: "hint", id: `${control.id}-hint` }, spec.hint) : null;
  if (hint) control.setAttribute("aria-describedby", hint.id);
  if (control.type === "checkbox") return h("div", { class: "check" }, control, label, ...(hint ? [hint] : []));
  return h("div", { class: `field option-${field}` }, label, control, ...(hint ? [hint] : []));
}

/** `quality` and `bitrate` exclude each other: choosing one empties the other. */
function excludeOther(controls: Record<Field, Control>, field: Field): Field[] {
  const other = field === "quality" ? "bitrate" : field === "bitrate" ? "quality" : undefined;
  if (!other || controls[field].value === "") return [field];
  controls[other].value = "";
  return [field, other];
}

function readForm(controls: Record<Field, Control>): { options: Options; invalid?: Control } {
  const options: Record<string, Value> = {};
  const bad = new Set<Field>();
  for (const field of ALL_FIELDS) {
    const value = SPECS[field].read(controls[field]);
    if (typeof value === "number" && Number.isNaN(value)) bad.add(field);
    else if (value !== undefined) options[field] = value;
  }
  const { start = 0, end } = options as Options;
  const backwards = end !== undefined && end <= start;
  controls.start.setCustomValidity(bad.has("start") ? TIME_HINT : "");
  controls.end.setCustomValidity(bad.has("end") ? TIME_HINT : backwards ? "The end must come after the start." : "");
  if (backwards) bad.add("end");
  const invalid = ALL_FIELDS.find((field) => bad.has(field));
  return { options: options as Options, ...(invalid ? { invalid: controls[invalid] } : {}) };
}

// ── the options in words ─────────────────────────────────────────────────────
/** The sound settings: "64 kbit/s", "mono", "normalized"… (the server's defaults left unsaid). */
export function soundWords(options: Options): string[] {
  return [
    options.bitrate !== undefined ? `${options.bitrate} kbit/s` : null,
    options.quality !== undefined ? `VBR quality ${options.quality}` : null,
    options.channels === 1 ? "mono" : options.channels === 2 ? "stereo" : null,
    options.normalize ? "normalized" : null,
    options.track ? `audio track ${options.track + 1}` : null,
    options.cover === "none" ? "no cover" : null,
  ].filter((word): word is string => word !== null);
}

/** "0:01 to 0:04", "from 0:10", "until 1:00"; undefined for the whole audio. */
export function trimWords({ start, end }: Options): string | undefined {
  if (end !== undefined) return start ? `${timeText(start)} to ${timeText(end)}` : `until ${timeText(end)}`;
  return start ? `from ${timeText(start)}` : undefined;
}

/** "“One More Time” by Daft Punk, on Discovery" */
export function tagWords({ title, artist, album }: Options): string | undefined {
  const words = [title ? `“${title}”` : null, artist ? `by ${artist}` : null, album ? `on ${album}` : null];
  return words.filter(Boolean).join(", ").replace(/, by /, " by ") || undefined;
}
