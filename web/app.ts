// The page's entry (web/index.html loads it): the login form, log out, what comes and goes with a session, and the start.
import { ApiError, type Context, describeError, login, register, session } from "./api.ts";
import { clearJobs, loadJobs } from "./jobs.ts";
import { $, say, show, view } from "./page.ts";
import { endSession, onSession, startSession } from "./session.ts";
import { upload } from "./upload.ts";
import { refreshUsage, showUsage } from "./usage.ts";

onSession({
  started: () => {
    void loadJobs();
    refreshUsage(0);
  },
  ended: () => {
    clearJobs();
    showUsage(null);
    upload.cancelAll();
  },
});

view.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
  const creating = submitter?.value === "register";
  const buttons = [...view.loginForm.querySelectorAll("button")];
  const email = view.email.value.trim();
  const password = view.password.value;
  for (const button of buttons) button.disabled = true;
  show(view.loginMessage, { title: creating ? "Creating your account…" : "Logging in…" });
  let context: Context = creating ? "register" : "login";
  try {
    if (creating) await register(email, password);
    context = "login";
    const value = await login(email, password);
    startSession(value);
    if (creating) say({ title: "Your account is ready.", detail: "Add a video to convert it to MP3." });
  } catch (error) {
    show(view.loginMessage, describeError(error, context), "error");
    (context === "login" && error instanceof ApiError && error.status === 401 ? view.password : view.email).focus();
  } finally {
    for (const button of buttons) button.disabled = false;
  }
});

$("logout").addEventListener("click", () => endSession({ title: "You have logged out." }));

// ── start ─────────────────────────────────────────────────────────────────────
const saved = session.load();
if (saved) startSession(saved);
else endSession(null);
document.body.classList.add("ready");
