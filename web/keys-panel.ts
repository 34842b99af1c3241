// The Developer dialog's API keys: the list (name, first characters, when made, when last
// used), "Create key" with a name (the key then shown once, with Copy), and Delete, asked
// once more in its row. Keys are made and deleted with the login's token, never with a key.
import { ApiError } from "./api.ts";
import { type ApiKey, createKey, deleteKey, listKeys } from "./developer-api.ts";
import { askInRow, showOnce, timeOf } from "./developer-parts.ts";
import { developerError } from "./developer-text.ts";
import { $, busy, h, show } from "./page.ts";
import { current, sessionLost } from "./session.ts";

const form = $<HTMLFormElement>("key-form");
const nameInput = form.elements.namedItem("name") as HTMLInputElement;
const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
const message = $("key-message");
const created = $("key-created");
const list = $<HTMLUListElement>("key-list");
const empty = $("keys-empty");

/** Reads the list again; `quiet` keeps an earlier message (after a create or a delete). */
export async function loadKeys({ quiet = false } = {}) {
  const mine = current;
  if (!mine) return;
  if (!quiet) show(message, null);
  list.setAttribute("aria-busy", "true");
  try {
    const keys = await listKeys(mine.token);
    if (current === mine) showKeys(keys);
  } catch (error) {
    if (!sessionLost(error)) show(message, developerError(error, "key"), "error");
  } finally {
    list.removeAttribute("aria-busy");
  }
}

function showKeys(keys: ApiKey[]) {
  list.replaceChildren(...keys.map(keyRow));
  empty.hidden = keys.length > 0;
}

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
      run: () => removeKey(key),
    }),
  );
  return row;
}

async function removeKey(key: ApiKey) {
  const mine = current;
  if (!mine) return;
  try {
    await deleteKey(mine.token, key.id);
    show(message, { title: `Deleted “${key.name}”.`, detail: "Programs that use it are refused within a minute." });
  } catch (error) {
    if (sessionLost(error)) return;
    if (!(error instanceof ApiError && error.status === 404)) {
      show(message, developerError(error, "key"), "error");
      throw error;
    }
  }
  await loadKeys({ quiet: true });
  nameInput.focus(); // the row and its buttons are gone
}

async function create(event: SubmitEvent) {
  event.preventDefault();
  const mine = current;
  if (!mine) return;
  busy(submit, "Creating…");
  show(message, null);
  created.replaceChildren();
  try {
    const key = await createKey(mine.token, nameInput.value);
    form.reset();
    showOnce(created, {
      title: `Your new API key “${key.name}”`,
      label: "API key",
      value: key.key,
      use: "m3dio keeps only a hash of it. A program sends it as “Authorization: Bearer m3d_…” to the job and webhook routes.",
    });
    await loadKeys({ quiet: true });
  } catch (error) {
    if (sessionLost(error)) return;
    show(message, developerError(error, "key"), "error");
    nameInput.focus();
  } finally {
    busy(submit, null);
  }
}

/** Forgets what the dialog showed: the key shown once, messages. */
export function clearKeys() {
  created.replaceChildren();
  show(message, null);
  form.reset();
  list.replaceChildren(); // read again at the next opening, whoever is logged in then
  empty.hidden = true;
}

form.addEventListener("submit", (event) => void create(event as SubmitEvent));
created.addEventListener("dismissed", () => nameInput.focus());
