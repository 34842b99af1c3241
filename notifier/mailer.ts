// Sending through Resend (its official SDK), sorted into what a retry may fix and
// what it cannot. Without an API key the email is logged instead, for development.
import { Resend } from "resend";
import type { Logger } from "../lib/log.ts";
import type { Email } from "./email.ts";

/** Resend is away or overloaded: worth another try later. */
export class SendUnavailable extends Error {
  override name = "SendUnavailable";
}
/** Resend refused the email for a reason retrying cannot fix (bad recipient, ...). */
export class SendRefused extends Error {
  override name = "SendRefused";
}

export interface MailerOptions {
  apiKey?: string;
  baseUrl: string;
  timeoutMs: number;
  log: Logger;
}

export function mailer({ apiKey, baseUrl, timeoutMs, log }: MailerOptions) {
  const resend = apiKey ? new Resend(apiKey, { baseUrl }) : undefined;
  return {
    /** Whether emails really go out (false: they are logged). */
    sends: resend !== undefined,
    /** Sends once per key (Resend deduplicates by it); answers Resend's email id, if sent. */
    async send(email: Email, idempotencyKey: string): Promise<string | undefined> {
      if (!resend) {
        log.info(
          { event: "email.logged", idempotencyKey, email },
          "RESEND_API_KEY unset: email logged instead of sent",
        );
        return undefined;
      }
      const { data, error } = await resend.emails.send(email, {
        idempotencyKey,
        signal: AbortSignal.timeout(timeoutMs),
      } as never);
      if (!error) return data?.id;
      const status = (error as { statusCode?: number | null }).statusCode ?? null;
      if (status === null || status === 429 || status >= 500)
        throw new SendUnavailable(`Resend answered ${status ?? "nothing"}: ${error.message}`);
      throw new SendRefused(`Resend refused the email (${status} ${error.name}): ${error.message}`);
    },
  };
}

export type Mailer = ReturnType<typeof mailer>;
