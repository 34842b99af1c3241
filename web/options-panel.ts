// The options every chosen file and pasted link starts from: a preset, and "Advanced" with
// every field of the model. The sound settings are remembered in this browser
// (localStorage) for the next visit; trim and tags belong to one visit's files.
import { FIELD_GROUPS, type Field, type Options, optionsForm } from "./options.ts";
import { h, view } from "./page.ts";
import { PRESET_FIELDS, PRESETS, presetOf } from "./presets.ts";

const SAVED_KEY = "m3dio.sound";
const form = optionsForm("shared", changedByHand);
const listeners: (() => void)[] = [];

/** Called whenever the shared options change (staging.ts shows them in each file's form). */
export const onSharedChange = (listener: () => void) => listeners.push(listener);

/** The options chosen here; `invalid` is a control holding no valid value. */
export const sharedOptions = () => form.read();

const radio = (id: string, name: string, detail: string) => {
  const input = h("input", { type: "radio", name: "preset", value: id, id: `preset-${id}` });
  const label = h(
    "label",
    { htmlFor: input.id },
    h("span", { class: "preset-name" }, name),
    " ",
    h("span", { class: "preset-detail" }, `(${detail})`),
  );
  return { input, row: h("div", { class: "preset" }, input, label) };
};
const radios = PRESETS.map((preset) => ({ preset, ...radio(preset.id, preset.name, preset.detail) }));
const custom = radio("custom", "Custom", "set under Advanced");

function build() {
  view.presets.append(...radios.map(({ row }) => row), custom.row);
  view.advancedFields.append(form.groups.sound, form.groups.trim, form.groups.tags);
  for (const { preset, input } of radios)
    input.addEventListener("change", () => {
      form.write(preset.options, PRESET_FIELDS);
      changed();
    });
  custom.input.addEventListener("change", () => {
    view.advanced.open = true;
    form.controls.quality.focus();
  });
  form.write(load(), FIELD_GROUPS.sound);
  markPreset();
}

function changedByHand(_fields: Field[]) {
  markPreset();
  changed();
}

function changed() {
  save();
  for (const listener of listeners) listener();
}

/** Checks the preset the options match, or "Custom", shown only then. */
function markPreset() {
  const preset = presetOf(form.read().options);
  for (const { preset: each, input } of radios) input.checked = each === preset;
  custom.input.checked = !preset;
  custom.row.hidden = Boolean(preset);
}

function load(): Options {
  try {
    return (JSON.parse(localStorage.getItem(SAVED_KEY) ?? "{}") as Options) ?? {};
  } catch {
    return {};
  }
}

function save() {
  const { options } = form.read();
  const sound = Object.fromEntries(FIELD_GROUPS.sound.map((field) => [field, options[field]]));
  try {
    localStorage.setItem(SAVED_KEY, JSON.stringify(sound));
  } catch {
    // storage refused (private mode, quota): the choice holds for this visit only
  }
}

build();
