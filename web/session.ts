// Who is logged in: the session's start, its expiry, its end, and a 401 anywhere ending it.
import { ApiError, type Message, type Session, session } from "./api.ts";
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
  view.login.hidden = true;
  view.app.hidden = false;
  show(view.loginMessage, null);
  say(null);
  view.appTitle.focus();
  hooks.started();
}

/** Back to the login form: on log out, on 401 anywhere, when the token expires. */
export function endSession(message: Message | null, kind: "info" | "error" = "info") {
  current = null;
  session.clear();
  clearTimeout(expiryTimer);
  hooks.ended();
  view.account.hidden = true;
  view.app.hidden = true;
  view.login.hidden = false;
  view.password.value = "";
  show(view.loginMessage, message, kind);
  view.email.focus();
}

/** Handles what every call may answer; true if the error was dealt with (401: logged out). */
export function sessionLost(error: unknown): boolean {
  if (error instanceof ApiError && error.status === 401) {
    endSession({ title: "Your session has ended. Please log in again." }, "error");
    return true;
  }
  return false;
}
