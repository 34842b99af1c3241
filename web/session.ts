// Who is logged in: the session's start and end, its access token renewed before it
// expires (and once on a 401), and the tabs of a remembered session kept together: a
// refresh, a logout or a login in one is followed by the others (a storage event).

import { endServerSession, refreshTokens } from "./account-api.ts";
import { ApiError, onTokenRefused } from "./api.ts";
import type { Message } from "./errors.ts";
import { say, show, view } from "./page.ts";
import {
  claimsOf,
  forgetSession,
  readSession,
  renewalTime,
  SESSION_KEY,
  type Session,
  saveSession,
  storedSession,
} from "./session-store.ts";

export type { Session };
export let current: Session | null = null;
let renewTimer: ReturnType<typeof setTimeout> | undefined;
let renewing: Promise<string | null> | undefined;

/** What the rest of the page does as a session starts, gets a new token, and ends; app.ts sets it. */
const hooks = { started: () => {}, renewed: () => {}, ended: () => {} };
export function onSession(handlers: typeof hooks) {
  Object.assign(hooks, handlers);
}

/** Starts `value`: a login's (saved where "Remember me" says), or one kept in storage. */
export function startSession(value: Session, { save = true } = {}) {
  if (current) endSession(null, "info", { forget: false });
  current = value;
  if (save) {
    if (value.remember) sessionStorage.removeItem(SESSION_KEY); // this tab's own, from an earlier login
    saveSession(value);
  }
  scheduleRenewal();
  showWho(value);
  view.account.hidden = false;
  view.auth.hidden = true;
  view.app.hidden = false;
  show(view.loginMessage, null);
  say(null);
  view.appTitle.focus();
  hooks.started();
}

function showWho(value: Session) {
  view.who.textContent = value.email;
  view.who.parentElement!.title = `Logged in as ${value.email}`;
}

/** Back to the login view: on log out, a refused refresh, a deleted account, another tab's logout. */
export function endSession(message: Message | null, kind: "info" | "error" = "info", { forget = true } = {}) {
  if (current && forget) forgetSession(current);
  current = null;
  clearTimeout(renewTimer);
  view.account.hidden = true;
  view.app.hidden = true;
  view.auth.hidden = false;
  hooks.ended(); // shows the login view, its password emptied, its email focused
  show(view.loginMessage, message, kind);
  if (message) view.loginMessage.scrollIntoView({ block: "nearest" }); // a phone's is below the form
}

/** Log out: the server ends the session (every tab's), then the page does. */
export async function logOut() {
  const ending = current;
  if (!ending) return;
  await endServerSession(ending.refreshToken).catch(() => {}); // unreachable: it ends by itself in time
  if (current === ending) endSession({ title: "You have logged out." });
}

/** Handles what every call may answer; true if the error was dealt with (401: logged out). */
export function sessionLost(error: unknown): boolean {
  if (!(error instanceof ApiError && error.status === 401)) return false;
  if (current) endSession({ title: "Your session has ended. Please log in again." }, "error");
  return true;
}

// ── renewing the access token ─────────────────────────────────────────────────
/** Takes new tokens into the session (from a refresh, here or in another tab). */
function adopt(next: Session) {
  if (!current) return;
  const { token, expiresAt, refreshToken, refreshExpiresAt, renewAt } = next;
  Object.assign(current, { token, expiresAt, refreshToken, refreshExpiresAt, renewAt });
  current.email = claimsOf(token).email ?? current.email;
  showWho(current);
  scheduleRenewal();
  hooks.renewed();
}

function scheduleRenewal(afterMs?: number) {
  clearTimeout(renewTimer);
  if (!current) return;
  const wait = afterMs ?? current.renewAt - Date.now();
  renewTimer = setTimeout(() => void renew(), Math.min(Math.max(wait, 0), 2 ** 31 - 1));
}

/**
 * A new access token: the one another tab already got, or one traded for the refresh token
 * (each works once, so tabs take turns under a lock and read what the last one stored).
 * `refused` is a token a request was refused with (401). Null when there is none: the
 * refresh was refused (the session ends) or the server is away (tried again shortly).
 */
export function renew(refused?: string): Promise<string | null> {
  const mine = current;
  if (!mine) return Promise.resolve(null);
  const stale = refused ?? mine.token;
  if (stale !== mine.token) return Promise.resolve(mine.token); // renewed since
  renewing ??= inTurn(() => trade(mine, stale)).finally(() => {
    renewing = undefined;
  });
  return renewing;
}

const inTurn = <T>(work: () => Promise<T>): Promise<T> =>
  navigator.locks ? navigator.locks.request("m3dio.session.refresh", work) : work();

async function trade(mine: Session, stale: string): Promise<string | null> {
  if (current !== mine) return current?.token ?? null;
  const stored = storedSession(mine);
  if (stored && stored.refreshToken !== mine.refreshToken && stored.email === mine.email) adopt(stored);
  if (mine.token !== stale) return mine.token; // another tab renewed it while this one waited its turn
  try {
    const tokens = await refreshTokens(mine.refreshToken);
    const next = { ...mine, ...tokens, renewAt: renewalTime(tokens) };
    if (current !== mine) return null;
    saveSession(next);
    adopt(next);
    return mine.token;
  } catch (error) {
    if (current !== mine) return null;
    if (error instanceof ApiError && (error.status === 401 || error.status === 422))
      endSession({ title: "Your session has ended. Please log in again." }, "error");
    else scheduleRenewal(30_000); // unreachable or briefly away: again shortly
    return null;
  }
}

/** The access token, renewed first when it is due (before an upload, which cannot be sent twice). */
export async function freshToken(): Promise<string | null> {
  if (!current) return null;
  return Date.now() < current.renewAt ? current.token : ((await renew()) ?? current?.token ?? null);
}

onTokenRefused(renew);

// A tab woken from sleep may have missed its timer.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && current && Date.now() >= current.renewAt) void renew();
});

// ── the other tabs of a remembered session ────────────────────────────────────
window.addEventListener("storage", (event) => {
  if (event.storageArea !== localStorage || (event.key !== SESSION_KEY && event.key !== null)) return;
  if (current && !current.remember) return; // this tab's own session: not shared
  const saved = readSession(localStorage);
  if (!saved) {
    if (current) endSession({ title: "You logged out in another tab." }, "info", { forget: false });
  } else if (current && current.email === saved.email) {
    if (saved.refreshToken !== current.refreshToken) adopt(saved);
  } else startSession(saved, { save: false }); // a login in another tab
});
