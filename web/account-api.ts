// The account routes (/auth/*) and a job's share link, as the page uses them: the bodies of
// lib/account-models.ts, the answers of README's "Your account" and gateway/link-routes.ts.
import type { ShareLink } from "../gateway/models.ts";
import { call, type Job, json, type Tokens } from "./api.ts";

/** Spends the token of the verification email's link. */
export async function verifyEmail(token: string): Promise<void> {
  await call("/auth/verify", json({ token }));
}

/** Sends the verification email again (202); 429 with Retry-After within 10 minutes of the last. */
export async function resendVerification(accessToken: string): Promise<void> {
  await call("/auth/verify/resend", { method: "POST", token: accessToken });
}

/** Trades the refresh token (once) for a new pair. */
export async function refreshTokens(refreshToken: string): Promise<Tokens> {
  return (await call("/auth/refresh", json({ refreshToken }))).json();
}

/** Ends the session of the refresh token (every token of that login). */
export async function endServerSession(refreshToken: string): Promise<void> {
  await call("/auth/logout", json({ refreshToken }));
}

/** Asks for a reset link: 202 whatever the address. */
export async function forgotPassword(email: string): Promise<void> {
  await call("/auth/password/forgot", json({ email }));
}

/** Chooses a new password with the token of the reset link. */
export async function resetPassword(token: string, password: string): Promise<void> {
  await call("/auth/password/reset", json({ token, password }));
}

export async function changePassword(accessToken: string, currentPassword: string, newPassword: string) {
  await call("/auth/password", { ...json({ currentPassword, newPassword }), token: accessToken });
}

/** Deletes the account and everything in it. */
export async function deleteAccount(accessToken: string, password: string): Promise<void> {
  await call("/auth/account", { ...json({ password }, "DELETE"), token: accessToken });
}

const sharePath = (job: Job) => job.links.share ?? `/jobs/${encodeURIComponent(job.id)}/share`;

/** A signed link to the done job's MP3 that works without a token until the job expires. */
export async function shareJob(accessToken: string, job: Job): Promise<ShareLink> {
  return (await call(sharePath(job), { method: "POST", token: accessToken })).json();
}

/** Makes every signed link to the job's MP3 made so far stop working. */
export async function unshareJob(accessToken: string, job: Job): Promise<void> {
  await call(sharePath(job), { method: "DELETE", token: accessToken });
}
