// The Developer dialog's API keys: the list (name, first characters, when made, when last
// used), "Create key" with a name (the key then shown once, with Copy), and Delete, asked
// once more in its row. Keys are made and deleted with the login's token, never with a key.
import { type ApiKey, createKey, deleteKey, listKeys } from "./developer-api.ts";
import { developerPanel } from "./developer-panel.ts";
import { askInRow, timeOf } from "./developer-parts.ts";
import { $, h } from "./page.ts";

const form = $<HTMLFormElement>("key-form");
const nameInput = form.elements.namedItem("name") as HTMLInputElement;

const panel = developerPanel({
  subject: "key",
  form,
  input: nameInput,
  message: $("key-message"),
  created: $("key-created"),
  list: $<HTMLUListElement>("key-list"),
  empty: $("keys-empty"),
  read: listKeys,
  row: keyRow,
  request: () => nameInput.value,
  make: createKey,
  making: "Creating…",
  shown: (key) => ({
    title: `Your new API key “${key.name}”`,
    label: "API key",
    value: key.key,
    use: "m3dio keeps only a hash of it. A program sends it as “Authorization: Bearer m3d_…” to the job and webhook routes.",
  }),
});

/** Reads the list again; `quiet` keeps an earlier message (after a create or a delete). */
export const loadKeys = panel.load;
/** Forgets what the dialog showed: the key shown once, messages. */
export const clearKeys = panel.clear;

function keyRow(key: ApiKey): HTMLLIElement {
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.setAttribute("aria-label", `Delete ${key.name}`);
  const actions = h("div", { class: "dev-actions" }, remove);
  const used = key.lastUsedAt ? ["last used ", timeOf(key.lastUsedAt)] : ["never used"];
  const row = h(
    "li",
    { class: "dev-item" },
    h(
      "div",
      { class: "dev-text" },
      h("h4", { class: "dev-name" }, key.name),
      h("p", { class: "meta" }, h("code", {}, `${key.prefix}…`), " · created ", timeOf(key.createdAt), " · ", ...used),
    ),
    actions,
  );
  remove.addEventListener("click", () =>
    askInRow(row, actions, {
      question: `Delete “${key.name}”? Programs that use it are refused within a minute. This can't be undone.`,
      confirm: "Delete key",
      working: "Deleting…",
      run: () =>
        panel.remove((token) => deleteKey(token, key.id), {
          title: `Deleted “${key.name}”.`,
          detail: "Programs that use it are refused within a minute.",
        }),
    }),
  );
  return row;
}
