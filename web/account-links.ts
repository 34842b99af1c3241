// The emailed links, `PUBLIC_URL/verify?token=…` and `PUBLIC_URL/reset?token=…` (the
// notifier builds them; the gateway serves the page at both paths). The token is taken out
// of the address at once, so no history entry or bookmark keeps it. A verification link
// confirms the address and says so, then the page goes on (logged in or not); a reset link
// opens the view that chooses a new password, then the login view. A link that does not
// work (used, expired, cut short) says what to do instead.

import { resetPassword, verifyEmail } from "./account-api.ts";
import { ApiError } from "./api.ts";
import { progress, showAuthView, tellAuth } from "./auth-views.ts";
import { describeError, type Message, sentence } from "./errors.ts";
import { say, show, view } from "./page.ts";
import { current, endSession, renew } from "./session.ts";
import { claimsOf, forgetSession, loadSession } from "./session-store.ts";

export interface EmailedLink {
  kind: "verify" | "reset";
  token: string;
}

/** The emailed link the page was opened at, if any; the address becomes `/` (its hash kept). */
export function takeEmailedLink(): EmailedLink | null {
  const kind = ({ "/verify": "verify", "/reset": "reset" } as const)[location.pathname];
  if (!kind) return null;
  const token = new URLSearchParams(location.search).get("token") ?? "";
  history.replaceState(null, "", `/${location.hash}`);
  return { kind, token };
}

/** A 422 naming `token`: the link does not work (any more). */
const linkRefused = (error: unknown) =>
  error instanceof ApiError && error.status === 422 && !!error.problem.errors?.some((issue) => issue.field === "token");

/** Where a verification's outcome is said: above the app when logged in, above the login form otherwise. */
function tell(message: Message, kind: "info" | "error" = "info") {
  if (current) say(message, kind);
  else tellAuth(message, kind);
}

/** Spends the verification link's token; a session this tab has gets a token that says so. */
export async function confirmAddress(token: string) {
  try {
    await verifyEmail(token);
    if (current) await renew(); // the new token's `email_verified`: the banner goes
    tell({
      title: "Your email address is confirmed.",
      detail: current ? "We'll email you when a conversion is ready." : "Log in to go on.",
    });
  } catch (error) {
    if (!linkRefused(error)) return tell(describeError(error, "login"), "error");
    if (current && claimsOf(current.token).email_verified)
      return tell({ title: "That link was used already: your email address is confirmed." });
    tell(
      {
        title: "That confirmation link doesn't work any more.",
        detail: `It was used already, or it is more than 48 hours old. ${
          current ? "Choose “Send it again” above" : "Log in, then choose “Send it again”"
        } for a new one.`,
      },
      "error",
    );
  }
}

// ── choosing a new password ───────────────────────────────────────────────────
let resetToken = "";

/** Opens the reset view for the link's token. */
export function openReset(token: string) {
  resetToken = token;
  showAuthView("reset");
}

async function saveNewPassword(event: SubmitEvent) {
  event.preventDefault();
  const password = view.resetForm.elements.namedItem("password") as HTMLInputElement;
  const button = view.resetForm.querySelector<HTMLButtonElement>("button[type=submit]")!;
  show(view.loginMessage, null);
  progress(button, "Saving…");
  try {
    await resetPassword(resetToken, password.value);
    // Every session of the account has ended: this browser's too.
    if (current) endSession(null);
    const kept = loadSession();
    if (kept) forgetSession(kept);
    showAuthView("login");
    tellAuth({ title: "Your new password is saved.", detail: "Log in with it." });
  } catch (error) {
    resetRefused(error, password);
  } finally {
    progress(button, null);
  }
}

function resetRefused(error: unknown, password: HTMLInputElement) {
  if (linkRefused(error)) {
    showAuthView("forgot");
    return tellAuth(
      {
        title: "That reset link doesn't work any more.",
        detail: "It was used already, or it is more than 30 minutes old. Ask for a new one here.",
      },
      "error",
    );
  }
  const fields = (error instanceof ApiError && error.problem.errors) || [];
  const message =
    error instanceof ApiError && error.status === 422
      ? { title: "Please check the new password.", detail: sentence(fields.map((f) => f.message).join("; ")) }
      : describeError(error, "login");
  tellAuth(message, "error");
  password.focus();
}

view.resetForm.addEventListener("submit", (event) => void saveNewPassword(event as SubmitEvent));
