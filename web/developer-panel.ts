// What a Developer dialog panel (API keys, webhooks) does with its list: read it with the
// login's token, make one with the form (its secret then shown once), delete one (gone
// already counts as deleted), and forget it all when the dialog closes. The panel file
// gives what differs: the API calls, a row, the words.
import { ApiError } from "./api.ts";
import { type ShownOnce, showOnce } from "./developer-parts.ts";
import { developerError, type Subject } from "./developer-text.ts";
import type { Message } from "./errors.ts";
import { busy, show } from "./page.ts";
import { current, sessionLost } from "./session.ts";

export interface PanelParts<Item, Request, Made> {
  subject: Subject;
  form: HTMLFormElement;
  /** The form's first field: the focus after a delete, a refused make, a secret put away. */
  input: HTMLInputElement;
  message: HTMLElement;
  /** Where the made one's secret is shown once. */
  created: HTMLElement;
  list: HTMLUListElement;
  /** Shown when the list is empty. */
  empty: HTMLElement;
  read(token: string): Promise<Item[]>;
  row(item: Item): HTMLLIElement;
  /** What the form asks for; undefined (having said why) when it cannot be sent. */
  request(): Request | undefined;
  make(token: string, request: Request): Promise<Made>;
  /** The submit button's words while making: "Creating…". */
  making: string;
  shown(made: Made): ShownOnce;
}

export function developerPanel<Item, Request, Made>(parts: PanelParts<Item, Request, Made>) {
  const { subject, form, input, message, created, list, empty } = parts;
  const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;

  /** Reads the list again; `quiet` keeps an earlier message (after a make or a delete). */
  async function load({ quiet = false } = {}) {
    const mine = current;
    if (!mine) return;
    if (!quiet) show(message, null);
    list.setAttribute("aria-busy", "true");
    try {
      const items = await parts.read(mine.token);
      if (current !== mine) return;
      list.replaceChildren(...items.map(parts.row));
      empty.hidden = items.length > 0;
    } catch (error) {
      if (!sessionLost(error)) show(message, developerError(error, subject), "error");
    } finally {
      list.removeAttribute("aria-busy");
    }
  }

  /** Deletes one through `remove` and says `done`; a failure is said and thrown (its row asks again). */
  async function remove(run: (token: string) => Promise<void>, done: Message) {
    const mine = current;
    if (!mine) return;
    try {
      await run(mine.token);
      show(message, done);
    } catch (error) {
      if (sessionLost(error)) return;
      if (!(error instanceof ApiError && error.status === 404)) {
        show(message, developerError(error, subject), "error");
        throw error;
      }
    }
    await load({ quiet: true });
    input.focus(); // the row and its buttons are gone
  }

  async function make(event: SubmitEvent) {
    event.preventDefault();
    const mine = current;
    if (!mine) return;
    created.replaceChildren();
    const request = parts.request();
    if (request === undefined) return;
    busy(submit, parts.making);
    show(message, null);
    try {
      const made = await parts.make(mine.token, request);
      form.reset();
      showOnce(created, parts.shown(made));
      await load({ quiet: true });
    } catch (error) {
      if (sessionLost(error)) return;
      show(message, developerError(error, subject), "error");
      input.focus();
    } finally {
      busy(submit, null);
    }
  }

  /** Forgets what the dialog showed: the secret shown once, messages, the list (read again at the next opening). */
  function clear() {
    created.replaceChildren();
    show(message, null);
    form.reset();
    list.replaceChildren();
    empty.hidden = true;
  }

  form.addEventListener("submit", (event) => void make(event as SubmitEvent));
  created.addEventListener("dismissed", () => input.focus());
  return { load, remove, clear };
}
