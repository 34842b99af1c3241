// Who is logged in: the session's start, its expiry, its end, and a 401 anywhere ending it.
import { ApiError, type Session, session } from "./api.ts";
import type { Message } from "./errors.ts";
import { say, show, view } from "./page.ts";

export let current: Session | null = null;
let expiryTimer: ReturnType<typeof setTimeout> | undefined;

/** What the rest of the page does as a session starts and ends; app.ts sets it. */
const hooks = { started: () => {}, ended: () => {} };
export function onSession(handlers: typeof hooks) {
  Object.assign(hooks, handlers);
}

export function startSession(value: Session) {
  current = value;
  session.save(value);
  clearTimeout(expiryTimer);
  const left = Date.parse(value.expiresAt) - Date.now();
  expiryTimer = setTimeout(
    () => endSession({ title: "Your session has expired. Please log in again." }),
    Math.min(left, 2 ** 31 - 1),
  );
  view.who.textContent = value.email;
  view.who.parentElement!.title = `Logged in as ${value.email}`;
  view.account.hidden = false;
  view.auth.hidden = true;
  view.app.hidden = false;
  show(view.loginMessage, null);
  say(null);
  view.appTitle.focus();
  hooks.started();
}

/** Back to the login view: on log out, on 401 anywhere, when the token expires. */
export function endSession(message: Message | null, kind: "info" | "error" = "info") {
  current = null;
  session.clear();
  clearTimeout(expiryTimer);
  view.account.hidden = true;
  view.app.hidden = true;
  view.auth.hidden = false;
  hooks.ended(); // shows the login view, its password emptied, its email focused
  show(view.loginMessage, message, kind);
}

/** Handles what every call may answer; true if the error was dealt with (401: logged out). */
export function sessionLost(error: unknown): boolean {
  if (error instanceof ApiError && error.status === 401) {
    endSession({ title: "Your session has ended. Please log in again." }, "error");
    return true;
  }
  return false;
}
