// One `email` message, start to end: the account email auth queued (the address's
// verification link, or a password reset link), sent once. Resend's idempotency key
// `email-<kind>-<tokenId>` (lib/messages.ts emailTokenId) makes a redelivered message
// send nothing twice; Resend being away is retried with backoff, then dead-lettered; a
// refusal retrying cannot fix is logged. The link is built here from PUBLIC_URL: auth
// sends only the token. An unverified address gets these and nothing else (notify.ts).
import { type EmailKind, type EmailMessage, emailTokenId } from "../lib/messages.ts";
import type { Delivery } from "../lib/queue.ts";
import type { Email } from "./email.ts";
import { SendRefused } from "./mailer.ts";
import { type NotifierContext, retryLater } from "./notify.ts";
import { html, render, type Template, text } from "./templates.ts";

/** Fixed subjects, like every email's. */
export const ACCOUNT_SUBJECTS = {
  verify: "Confirm your email address for m3dio",
  reset: "Reset your m3dio password",
} as const satisfies Record<EmailKind, string>;

/** Where each kind's link leads on the page (`PUBLIC_URL/verify?token=…`, `PUBLIC_URL/reset?token=…`). */
const LINK_PATHS: Record<EmailKind, string> = { verify: "/verify", reset: "/reset" };

interface LinkData {
  link: string;
}

const TEMPLATES: Record<EmailKind, Template<LinkData>> = {
  verify: {
    subject: ACCOUNT_SUBJECTS.verify,
    text: (d) => [
      "Welcome to m3dio.",
      "",
      text`Open this link to confirm that this address is yours (it works once, for 48 hours): ${d.link}`,
      "",
      "Until then we send no emails about your conversions to it.",
      "If you did not make an account, ignore this email: nothing more will come.",
    ],
    html: (d) => html`<p>Welcome to m3dio.</p>
<p><a href="${d.link}">Confirm that this address is yours</a> (the link works once, for 48 hours).</p>
<p>Until then we send no emails about your conversions to it.</p>
<p>If you did not make an account, ignore this email: nothing more will come.</p>`,
  },
  reset: {
    subject: ACCOUNT_SUBJECTS.reset,
    text: (d) => [
      "Someone (we hope you) asked to reset the password of your m3dio account.",
      "",
      text`Choose a new password here (the link works once, for 30 minutes): ${d.link}`,
      "",
      "Choosing one logs out everywhere you are logged in.",
      "If you did not ask, ignore this email: your password stays as it is.",
    ],
    html: (d) => html`<p>Someone (we hope you) asked to reset the password of your m3dio account.</p>
<p><a href="${d.link}">Choose a new password</a> (the link works once, for 30 minutes).</p>
<p>Choosing one logs out everywhere you are logged in.</p>
<p>If you did not ask, ignore this email: your password stays as it is.</p>`,
  },
};

export function composeAccountEmail(
  { kind, to, token }: EmailMessage,
  config: { MAIL_FROM: string; PUBLIC_URL: string },
): Email {
  const link = `${config.PUBLIC_URL.replace(/\/+$/, "")}${LINK_PATHS[kind]}?token=${encodeURIComponent(token)}`;
  return { from: config.MAIL_FROM, to, ...render(TEMPLATES[kind], { link }) };
}

/** Sends the email; failures a retry may fix are retried (counted) after a pause, then dead-lettered. */
export async function sendAccountEmail(context: NotifierContext, delivery: Delivery<EmailMessage>): Promise<void> {
  const { config, log, mail, emails } = context;
  const { kind, userId, token } = delivery.body;
  const tokenId = emailTokenId(token);
  const emailLog = log.child({ userId, kind, tokenId });
  try {
    const emailId = await mail.send(composeAccountEmail(delivery.body, config), `email-${kind}-${tokenId}`);
    emails.inc({ outcome: mail.sends ? "sent" : "logged" });
    if (mail.sends) emailLog.info({ event: "email.sent", emailId }, `${kind} email sent`);
  } catch (error) {
    if (error instanceof SendRefused) {
      emails.inc({ outcome: "refused" });
      return emailLog.error({ event: "email.refused", reason: error.message }, "email refused");
    }
    return retryLater(context, delivery, emailLog, error); // on the last attempt: accountEmailExhausted()
  }
}

/** Resend stayed away through every attempt: the message goes to `email.dead`, logged. */
export function accountEmailExhausted({ config, log, emails }: NotifierContext, body: EmailMessage) {
  emails.inc({ outcome: "dead_lettered" });
  log.error(
    { event: "email.dead_lettered", userId: body.userId, kind: body.kind, attempts: config.MAX_ATTEMPTS },
    "account email not sent after all attempts; dead-lettered",
  );
}
