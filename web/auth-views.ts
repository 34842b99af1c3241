// Logging in, creating an account, asking for a reset link and choosing a new password:
// four views, each its own form (so a password manager knows which password is new),
// switched by buttons; the email typed carries over. While a request is under way its
// button says so ("Logging in…"), and a hidden live region tells a screen reader; only
// the outcome gets a message box. The reset view is reached by the emailed link
// (account-links.ts sends its form).

import { forgotPassword } from "./account-api.ts";
import { ApiError, login, register } from "./api.ts";
import { type Context, describeError, type Message } from "./errors.ts";
import { $, busy, say, show, view } from "./page.ts";
import { startSession } from "./session.ts";
import { renewalTime } from "./session-store.ts";

export type AuthView = "login" | "register" | "forgot" | "reset";

const sections: Record<AuthView, HTMLElement> = {
  login: view.loginView,
  register: view.registerView,
  forgot: view.forgotView,
  reset: view.resetView,
};
const forms: Record<AuthView, HTMLFormElement> = {
  login: view.loginForm,
  register: view.registerForm,
  forgot: view.forgotForm,
  reset: view.resetForm,
};
const field = (which: AuthView, name: string) => forms[which].elements.namedItem(name) as HTMLInputElement | null;
const submitOf = (form: HTMLFormElement) => form.querySelector<HTMLButtonElement>("button[type=submit]")!;

/** Shows one view, every password emptied and masked; the email typed in the last one carries over. */
export function showAuthView(which: AuthView, focus = true) {
  const shown = (Object.keys(sections) as AuthView[]).find((name) => !sections[name].hidden);
  const typed = shown && field(shown, "email")?.value;
  for (const [name, section] of Object.entries(sections)) section.hidden = name !== which;
  const email = field(which, "email");
  if (email && typed) email.value = typed;
  for (const password of view.auth.querySelectorAll<HTMLInputElement>(".password-row input")) password.value = "";
  resetToggles(view.auth);
  show(view.loginMessage, null);
  view.authStatus.textContent = "";
  const password = field(which, "password");
  if (focus) (email && !email.value ? email : (password ?? email))?.focus();
}

/** Says `message` under the auth views, scrolled into view (a phone's may be below the fold). */
export function tellAuth(message: Message, kind: "info" | "error" = "info") {
  show(view.loginMessage, message, kind);
  view.loginMessage.scrollIntoView({ block: "nearest" });
}

/** While a request is under way: the button says what it does, and so does the live region. */
export function progress(button: HTMLButtonElement, text: string | null) {
  busy(button, text);
  view.authStatus.textContent = text ?? "";
}

async function logInOrRegister(which: "login" | "register", event: SubmitEvent) {
  event.preventDefault();
  const email = field(which, "email")!;
  const password = field(which, "password")!;
  const button = submitOf(forms[which]);
  const address = email.value.trim();
  const creating = which === "register";
  show(view.loginMessage, null);
  progress(button, creating ? "Creating your account…" : "Logging in…");
  let context: Context = which;
  try {
    if (creating) await register(address, password.value);
    context = "login";
    if (creating) progress(button, "Logging in…");
    // A new account is remembered; the login form's "Remember me" says for a login.
    const remember = creating || view.remember.checked;
    const tokens = await login(address, password.value);
    startSession({ ...tokens, email: address, remember, renewAt: renewalTime(tokens) });
    if (creating)
      say({
        title: "Your account is ready.",
        detail: "We sent you an email to confirm your address. Meanwhile, add a video or audio file to convert it.",
      });
  } catch (error) {
    tellAuth(describeError(error, context), "error");
    (context === "login" && error instanceof ApiError && error.status === 401 ? password : email).focus();
  } finally {
    progress(button, null);
  }
}

/** The reset link is asked for; the answer never tells whether the address has an account. */
async function askForReset(event: SubmitEvent) {
  event.preventDefault();
  const email = field("forgot", "email")!;
  const button = submitOf(view.forgotForm);
  const address = email.value.trim();
  show(view.loginMessage, null);
  progress(button, "Sending…");
  try {
    await forgotPassword(address);
    tellAuth({
      title: `If an account exists for ${address}, we sent it a link to choose a new password.`,
      detail: "The link works for 30 minutes. Nothing there? Look in your spam folder, or ask again in a minute.",
    });
  } catch (error) {
    tellAuth(describeError(error, "login"), "error");
    email.focus();
  } finally {
    progress(button, null);
  }
}

view.loginForm.addEventListener("submit", (event) => void logInOrRegister("login", event as SubmitEvent));
view.registerForm.addEventListener("submit", (event) => void logInOrRegister("register", event as SubmitEvent));
view.forgotForm.addEventListener("submit", (event) => void askForReset(event as SubmitEvent));
$("to-register").addEventListener("click", () => showAuthView("register"));
$("to-forgot").addEventListener("click", () => showAuthView("forgot"));
for (const back of document.querySelectorAll("#to-login, .to-login"))
  back.addEventListener("click", () => showAuthView("login"));

// ── "Show" beside a password ──────────────────────────────────────────────────
/** Masks every password under `root` again, its button saying "Show". */
export function resetToggles(root: HTMLElement) {
  for (const toggle of root.querySelectorAll<HTMLButtonElement>(".reveal")) {
    toggle.firstChild!.textContent = "Show";
    $<HTMLInputElement>(toggle.getAttribute("aria-controls")!).type = "password";
  }
}

// Its text in the clear, "Hide" to mask it again.
for (const toggle of document.querySelectorAll<HTMLButtonElement>(".reveal")) {
  const input = $<HTMLInputElement>(toggle.getAttribute("aria-controls")!);
  toggle.addEventListener("click", () => {
    const revealing = input.type === "password";
    input.type = revealing ? "text" : "password";
    toggle.firstChild!.textContent = revealing ? "Hide" : "Show";
    input.focus();
  });
}
