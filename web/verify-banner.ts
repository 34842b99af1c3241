// The banner of an unverified address (the access token's `email_verified` is false): what
// it means, and "Send it again" (the server sends one at most every 10 minutes; its 429
// is said with how long to wait). It goes as soon as a token says the address is
// confirmed: after the link is followed in this tab, or in another (a storage event).

import { resendVerification } from "./account-api.ts";
import { ApiError } from "./api.ts";
import { describeError, duration } from "./errors.ts";
import { busy, show, view } from "./page.ts";
import { current, renew, sessionLost } from "./session.ts";
import { claimsOf } from "./session-store.ts";

/** Shows the banner while the session's token says the address is not confirmed. */
export function showVerifyBanner() {
  const unverified = !!current && claimsOf(current.token).email_verified === false;
  if (view.verifyBanner.hidden === !unverified) return;
  view.verifyBanner.hidden = !unverified;
  view.verifyEmail.textContent = current?.email ?? "";
  show(view.verifyResult, null);
}

async function sendAgain() {
  const mine = current;
  if (!mine) return;
  const button = view.verifyResend;
  busy(button, "Sending…");
  show(view.verifyResult, null);
  try {
    await resendVerification(mine.token);
    show(view.verifyResult, {
      title: "Sent.",
      detail: `Look for “Confirm your email address for m3dio” at ${mine.email}, in your spam folder too.`,
    });
  } catch (error) {
    if (sessionLost(error)) return;
    if (error instanceof ApiError && error.status === 409) {
      await renew(); // confirmed meanwhile: a token that says so takes the banner away
      return;
    }
    const tooSoon = error instanceof ApiError && error.status === 429;
    show(view.verifyResult, resendRefused(error), tooSoon ? "info" : "error"); // too soon is news, not a fault
  } finally {
    busy(button, null);
  }
}

function resendRefused(error: unknown) {
  if (!(error instanceof ApiError && error.status === 429)) return describeError(error, "login");
  const wait = error.retryAfter ? `in ${duration(error.retryAfter)}` : "later";
  return {
    title: "We sent you one less than 10 minutes ago.",
    detail: `Look for it in your inbox and spam folder; if it isn't there, you can ask again ${wait}.`,
  };
}

view.verifyResend.addEventListener("click", () => void sendAgain());
