// Sessions' routes: a refresh token traded for a new pair, and a logout. Login (auth.ts)
// starts the session; auth/session-store.ts keeps its tokens and spots a replayed one.
import { Elysia } from "elysia";
import { RefreshBody, Session } from "../lib/account-models.ts";
import { limitedJson } from "../lib/json.ts";
import { Problem, Unauthorized } from "../lib/problem.ts";
import type { AccessToken } from "./access-tokens.ts";
import type { User } from "./accounts.ts";
import type { AuthParts } from "./parts.ts";
import type { RefreshToken } from "./session-store.ts";

/** A login's or a refresh's answer: the access token and the session's next refresh token. */
export function sessionAnswer(access: AccessToken, refresh: RefreshToken): typeof Session.static {
  return { ...access, refreshToken: refresh.refreshToken, refreshExpiresAt: refresh.refreshExpiresAt.toISOString() };
}

/** A new session for a user who just proved who they are. */
export async function startSession({ sessions, tokens }: Pick<AuthParts, "sessions" | "tokens">, user: User) {
  const refresh = await sessions.start(user.id);
  return sessionAnswer(await tokens.sign(user, refresh.family), refresh);
}

export const sessionRoutes = ({ log, sessions, accounts, tokens }: AuthParts) =>
  new Elysia({ name: "auth.sessions" })
    .post(
      "/refresh",
      async ({ body }) => {
        const rotation = await sessions.rotate(body.refreshToken);
        if (rotation.kind === "reused") {
          const { userId, family } = rotation;
          log.warn({ event: "session.reused", userId: String(userId), family }, "a rotated refresh token came back");
          throw new Unauthorized("this refresh token was used before, so its session is ended; log in again");
        }
        const user = rotation.kind === "rotated" ? await accounts.find(rotation.userId) : undefined;
        if (rotation.kind !== "rotated" || !user)
          throw new Unauthorized("the refresh token is invalid or expired; log in again");
        log.info({ event: "session.refreshed", userId: String(user.id) }, "session refreshed");
        return sessionAnswer(await tokens.sign(user, rotation.next.family), rotation.next);
      },
      {
        parse: limitedJson(),
        body: RefreshBody,
        response: { 200: Session, 401: Problem, 422: Problem },
        detail: { tags: ["auth"], summary: "Trade a refresh token for a new access token and refresh token" },
      },
    )
    .post(
      "/logout",
      async ({ body, status }) => {
        const userId = await sessions.end(body.refreshToken);
        if (userId) log.info({ event: "session.ended", userId: String(userId) }, "logged out");
        return status(204, undefined);
      },
      {
        parse: limitedJson(),
        body: RefreshBody,
        detail: { tags: ["auth"], summary: "End the session of a refresh token (204 also when it was ended already)" },
      },
    );
