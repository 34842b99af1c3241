// Logging in and creating an account: two views, each its own form (so a password manager
// knows which password is new), switched by a button in each; the email typed carries
// over. While a request is under way its button says so ("Logging in…"), and a hidden
// live region tells a screen reader; only the outcome gets a message box.
import { ApiError, login, register } from "./api.ts";
import { type Context, describeError } from "./errors.ts";
import { $, busy, say, show, view } from "./page.ts";
import { startSession } from "./session.ts";

type Which = "login" | "register";

const parts = (form: HTMLFormElement) => ({
  email: form.elements.namedItem("email") as HTMLInputElement,
  password: form.elements.namedItem("password") as HTMLInputElement,
  submit: form.querySelector<HTMLButtonElement>("button[type=submit]")!,
});
const forms = { login: parts(view.loginForm), register: parts(view.registerForm) };

/** Shows one view, its passwords emptied; the email typed in the other carries over. */
export function showAuthView(which: Which, focus = true) {
  const other = forms[which === "login" ? "register" : "login"];
  const shown = forms[which];
  view.loginView.hidden = which !== "login";
  view.registerView.hidden = which !== "register";
  if (other.email.value) shown.email.value = other.email.value;
  for (const { password } of Object.values(forms)) {
    password.value = "";
    password.type = "password";
  }
  for (const toggle of document.querySelectorAll<HTMLButtonElement>(".reveal")) toggle.firstChild!.textContent = "Show";
  show(view.loginMessage, null);
  view.authStatus.textContent = "";
  if (focus) (shown.email.value ? shown.password : shown.email).focus();
}

async function submit(which: Which, event: SubmitEvent) {
  event.preventDefault();
  const { email, password, submit: button } = forms[which];
  const address = email.value.trim();
  const creating = which === "register";
  const progress = (text: string) => {
    busy(button, text);
    view.authStatus.textContent = text;
  };
  show(view.loginMessage, null);
  progress(creating ? "Creating your account…" : "Logging in…");
  let context: Context = which;
  try {
    if (creating) await register(address, password.value);
    context = "login";
    if (creating) progress("Logging in…");
    startSession(await login(address, password.value));
    if (creating) say({ title: "Your account is ready.", detail: "Add a video or audio file to convert it to MP3." });
  } catch (error) {
    view.authStatus.textContent = "";
    show(view.loginMessage, describeError(error, context), "error");
    (context === "login" && error instanceof ApiError && error.status === 401 ? password : email).focus();
  } finally {
    busy(button, null);
  }
}

view.loginForm.addEventListener("submit", (event) => void submit("login", event as SubmitEvent));
view.registerForm.addEventListener("submit", (event) => void submit("register", event as SubmitEvent));
$("to-register").addEventListener("click", () => showAuthView("register"));
$("to-login").addEventListener("click", () => showAuthView("login"));

// "Show" beside a password: its text in the clear, "Hide" to mask it again.
for (const toggle of document.querySelectorAll<HTMLButtonElement>(".reveal")) {
  const input = $<HTMLInputElement>(toggle.getAttribute("aria-controls")!);
  toggle.addEventListener("click", () => {
    const revealing = input.type === "password";
    input.type = revealing ? "text" : "password";
    toggle.firstChild!.textContent = revealing ? "Hide" : "Show";
    input.focus();
  });
}
