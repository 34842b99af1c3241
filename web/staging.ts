// Files chosen but not yet sent ("Ready to convert"). Each has a form of its own that shows
// the shared options (options-panel.ts) until the person changes a field for this file,
// which is then its own; its title and artist are prefilled from its name and its trim
// shows its length. "Convert" sends them all, each with its options; nothing is sent before.
import { sizeText, tagsFromName } from "./format.ts";
import { ALL_FIELDS, type Field, type OptionsForm, optionsForm, tagWords, trimWords } from "./options.ts";
import { onSharedChange, sharedOptions } from "./options-panel.ts";
import { h, say, view } from "./page.ts";
import { soundSummary } from "./presets.ts";
import { readLength, type TrimControl, trimControl } from "./trim.ts";
import { onFilesChosen, upload } from "./upload.ts";

interface Staged {
  file: File;
  item: HTMLLIElement;
  form: OptionsForm;
  /** the fields the person changed for this file: the shared options no longer reach them */
  own: Set<Field>;
  fromName: { title?: string; artist?: string };
  trim: TrimControl;
  summary: HTMLElement;
  editor: HTMLDetailsElement;
  sound: HTMLDetailsElement;
}

const staged: Staged[] = [];
let counter = 0;

/** Adds `files` to the list, each with the shared options; several at once start folded. */
export function stage(files: Iterable<File>) {
  const added = [...files].map(card);
  if (!added.length) return;
  staged.push(...added);
  const several = staged.length > 1;
  for (const each of staged) each.editor.open = !several;
  say(null);
  update();
  view.stagedTitle.focus();
}

/** Forgets every chosen file: the session ended. */
export function unstageAll() {
  for (const each of staged.splice(0)) each.item.remove();
  update();
}

function card(file: File): Staged {
  const id = ++counter;
  const own = new Set<Field>();
  const form = optionsForm(`file${id}`, (fields) => {
    for (const field of fields) own.add(field);
    describe(entry);
  });
  const name = file.name;
  const remove = h(
    "button",
    { type: "button", class: "quiet" },
    "Remove",
    h("span", { class: "visually-hidden" }, ` ${name}`),
  );
  const sound = h("details", { class: "sound" }, h("summary", {}, "Sound for this file"), form.groups.sound);
  const trim = trimControl(form.controls.start as HTMLInputElement, form.controls.end as HTMLInputElement);
  form.groups.trim.append(trim.status);
  const editor = h(
    "details",
    { class: "editor" },
    h("summary", {}, "Trim, tags and sound"),
    h("div", { class: "editor-body" }, form.groups.trim, form.groups.tags, sound),
  );
  const summary = h("p", { class: "meta" });
  const item = h(
    "li",
    { class: "staged-file" },
    h("div", { class: "head" }, h("h3", { class: "name", title: name }, name), remove),
    summary,
    editor,
  );
  const entry: Staged = { file, item, form, own, fromName: tagsFromName(name), trim, summary, editor, sound };
  remove.addEventListener("click", () => unstage(entry));
  view.stagedList.append(item);
  showShared(entry);
  void readLength(file).then((seconds) => trim.setLength(seconds));
  return entry;
}

/** Shows the shared options in the fields this file has not changed; the name's tags where they say nothing. */
function showShared(entry: Staged) {
  const shared = sharedOptions().options;
  const base = {
    ...shared,
    title: shared.title ?? entry.fromName.title,
    artist: shared.artist ?? entry.fromName.artist,
  };
  entry.form.write(
    base,
    ALL_FIELDS.filter((field) => !entry.own.has(field)),
  );
  entry.trim.sync();
  describe(entry);
}

function describe(entry: Staged) {
  const { options } = entry.form.read();
  const words = [sizeText(entry.file.size), soundSummary(options), trimWords(options), tagWords(options)];
  entry.summary.textContent = words.filter(Boolean).join(" · ");
  entry.sound.querySelector("summary")!.textContent = `Sound for this file: ${soundSummary(options)}`;
}

function unstage(entry: Staged) {
  const at = staged.indexOf(entry);
  staged.splice(at, 1);
  entry.item.remove();
  update();
  const next = staged[at] ?? staged[at - 1];
  (next?.item.querySelector("button") ?? view.pick).focus();
}

function update() {
  view.staged.hidden = staged.length === 0;
  const count = staged.length === 1 ? "1 file" : `${staged.length} files`;
  view.stagedTitle.textContent = `Ready to convert: ${count}`;
  view.send.textContent = `Convert ${count}`;
}

/** Sends every file, once the shared options and each file's own hold valid values. */
function send() {
  const shared = sharedOptions();
  if (shared.invalid) {
    view.advanced.open = true;
    shared.invalid.reportValidity();
    return;
  }
  const items = [];
  for (const entry of staged) {
    const { options, invalid } = entry.form.read();
    if (invalid) {
      entry.editor.open = true;
      if (entry.sound.contains(invalid)) entry.sound.open = true;
      invalid.reportValidity();
      return;
    }
    items.push({ file: entry.file, options });
  }
  unstageAll();
  upload.add(items);
}

onFilesChosen(stage);
onSharedChange(() => {
  for (const entry of staged) showShared(entry);
});
view.send.addEventListener("click", send);
view.unstage.addEventListener("click", () => {
  unstageAll();
  view.pick.focus();
});
