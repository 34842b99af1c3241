// The account routes' models as the gateway's OpenAPI document names them (the schemas
// themselves are lib/account-models.ts, which auth validates with too), and each route's
// OpenAPI text. Registered as copies (lib/openapi.ts `registered`), like gateway/models.ts
// does, so a schema embedded elsewhere never shares an `$id`.
import { Elysia } from "elysia";
import {
  ApiKeyList,
  ChangePasswordBody,
  CreatedApiKey,
  DeleteAccountBody,
  ForgotBody,
  NewApiKeyBody,
  RefreshBody,
  Registered,
  ResetBody,
  Session,
  Verified,
  VerifyBody,
} from "../lib/account-models.ts";
import { registered } from "../lib/openapi.ts";
import { answers as described, routeDocs } from "./route-docs.ts";

export const accountModels = new Elysia({ name: "gateway.account-models" }).model({
  Registered: registered(Registered),
  Session: registered(Session),
  VerifyBody: registered(VerifyBody),
  Verified: registered(Verified),
  RefreshBody: registered(RefreshBody),
  ForgotBody: registered(ForgotBody),
  ResetBody: registered(ResetBody),
  ChangePasswordBody: registered(ChangePasswordBody),
  DeleteAccountBody: registered(DeleteAccountBody),
  NewApiKeyBody: registered(NewApiKeyBody),
  CreatedApiKey: registered(CreatedApiKey),
  ApiKeyList: registered(ApiKeyList),
});

const bearer = [{ bearer: [] }];

/** What each problem status means on these routes. */
const PROBLEMS: Record<number, string> = {
  401: "no valid bearer token (log in again)",
  403: "the password given is not yours (the field is named), or an API key was sent: the account routes need a login's access token",
  404: "no such API key (among yours)",
  409: "the address is verified already, or the account holds the most API keys it may (50)",
  422: "a field is invalid, or the link's token does not work (the field is named)",
  429: "too many tries; `Retry-After` says when to try again",
  503: "auth or its database is away; try again shortly",
};

/**
 * The answers of a route whose success has no body: written out here, because Elysia
 * has no schema for "no body"; each problem's body is lib/openapi.ts's to add.
 */
const answers = (success: Record<number, string>, ...problems: number[]) =>
  described({ ...success, ...Object.fromEntries(problems.map((status) => [status, PROBLEMS[status]!])) });

/** Each account route's OpenAPI text. */
export const accountAuthDocs = routeDocs({
  register: {
    tags: ["auth"],
    summary: "Create an account; a verification email goes to the address",
    description:
      "The email links to `PUBLIC_URL/verify?token=…`; the page sends that token to `POST /auth/verify`. Until then the account works, but emails about conversions are not sent to the address.",
    responses: described({
      201: "the account; the verification email is on its way",
      409: "an account with this address exists already",
      422: "the email is not an address, or the password is not 8 to 256 characters: `errors` names each field",
      429: "too many registrations from your address: try again after `Retry-After`",
      503: "auth or its database is away; try again shortly",
    }),
  },
  login: {
    tags: ["auth"],
    summary: "Log in with JSON or HTTP Basic; answers a bearer token and a refresh token",
    description:
      "The access token carries `email_verified`. The refresh token (30 days) is traded for a new pair at `POST /auth/refresh`, once: each refresh token works one time.",
    security: [{}, { basic: [] }],
    responses: described({
      200: "a session: the access token (`token`, an hour) and the refresh token (30 days)",
      401: "wrong email or password, or no credentials at all",
      422: "the email or the password is longer than any account's: `errors` names the field",
      429: "too many logins from your address, or too many failed ones for this account: try again after `Retry-After`",
      503: "auth or its database is away; try again shortly",
    }),
  },
  basicLogin: {
    tags: ["compatibility"],
    summary: "HTTP Basic login answering the bare access token as text (`curl -X POST -u email:password /login`)",
    description: "The reference system's login. The same checks and limits as `POST /auth/login`; no refresh token.",
    security: [{ basic: [] }],
    responses: {
      200: {
        description: "the access token, as text: send it as `Authorization: Bearer <token>`",
        content: {
          "text/plain": {
            schema: { type: "string", description: "a JWT" },
            example: "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
          },
        },
      },
      ...described({
        401: "no HTTP Basic credentials, or wrong email or password (`WWW-Authenticate: Basic`)",
        422: "the email or the password is longer than any account's: `errors` names the field",
        429: "too many logins from your address, or too many failed ones for this account: try again after `Retry-After`",
        503: "auth or its database is away; try again shortly",
      }),
    },
  },
  verify: {
    tags: ["auth"],
    summary: "Verify the address with the token of the emailed link",
    description:
      "A link works once, for 48 hours; 422 naming `token` otherwise. Access tokens signed from then on (refresh, or log in again) say `email_verified: true`.",
    responses: described({
      200: "the address is verified",
      422: "the token does not work (used, older than 48 hours, or unknown): `errors` names `token`",
      503: "auth or its database is away; try again shortly",
    }),
  },
  resend: {
    tags: ["auth"],
    summary: "Send the verification email again",
    description:
      "At most one verification email every 10 minutes (registration's counts): 429 with `Retry-After` before that; 409 once the address is verified.",
    security: bearer,
    responses: answers({ 202: "the email is on its way" }, 401, 409, 429, 503),
  },
  refresh: {
    tags: ["auth"],
    summary: "Trade a refresh token for a new access token and refresh token",
    description:
      "The refresh token given stops working. Showing a refresh token a second time (a copy) ends its whole session: every refresh token of that login stops working, and 401 asks to log in again.",
    responses: described({
      200: "a new session: a new access token and a new refresh token",
      401: "the refresh token does not work (used before, expired, or its session ended): log in again",
      422: "`refreshToken` is not a token as it was given: `errors` names it",
      503: "auth or its database is away; try again shortly",
    }),
  },
  logout: {
    tags: ["auth"],
    summary: "End the session of a refresh token",
    description:
      "Every refresh token of that login stops working; access tokens live out their hour. 204 also for an ended one.",
    responses: answers({ 204: "the session is ended" }, 422, 503),
  },
  forgot: {
    tags: ["auth"],
    summary: "Email a password reset link",
    description:
      "202 whatever the address, at once: whether it has an account is not told, not even by the time the answer takes. A known address gets a link to `PUBLIC_URL/reset?token=…` (single-use, 30 minutes; at most one a minute).",
    responses: answers({ 202: "if the address has an account, a reset link is on its way" }, 422, 503),
  },
  reset: {
    tags: ["auth"],
    summary: "Choose a new password with the token of the emailed reset link",
    description:
      "Every session of the account ends (its refresh tokens stop working), the login lockout is lifted, and the address counts as verified. 422 naming `token` for a link that does not work (used, expired, unknown).",
    responses: answers({ 204: "the password is changed; log in with it" }, 422, 503),
  },
  changePassword: {
    tags: ["auth"],
    summary: "Change your password",
    description:
      "403 naming `currentPassword` when it is wrong (wrong guesses count toward the login lockout: 429 with `Retry-After`). Your other sessions end; the one this token came from goes on.",
    security: bearer,
    responses: answers({ 204: "the password is changed" }, 401, 403, 422, 429, 503),
  },
  deleteAccount: {
    tags: ["auth"],
    summary: "Delete your account, with every job, video, MP3, cover, API key and webhook",
    description:
      "403 naming `password` when it is wrong. The account logs in no more at once; its jobs and files are removed right after (a crash in between is finished later).",
    security: bearer,
    responses: answers({ 204: "the account is deleted" }, 401, 403, 422, 429, 503),
  },
  createKey: {
    tags: ["api keys"],
    summary: "Make an API key for a program",
    description:
      "The answer holds the key (`m3d_…`) this once; only its hash is kept. A program sends it as `Authorization: Bearer m3d_…` on the job routes (`/jobs…`, `/upload`, `/download`), `GET /account/usage` and the webhook routes; the account routes (`/auth/…`) refuse it with 403, so a leaked key cannot change the password, make more keys or delete the account. Needs a login's access token; at most 50 keys per account (409).",
    security: bearer,
    responses: described({
      201: "the key, shown this once: keep it where the program reads it",
      409: "the account holds the most API keys it may (50): delete one first",
      422: "`name` is not 1 to 100 characters: `errors` names it",
    }),
  },
  listKeys: {
    tags: ["api keys"],
    summary: "Your API keys, newest first",
    description:
      "Each key's id, name, first characters (`prefix`), `createdAt` and `lastUsedAt` (moved at most once a minute, and a gateway remembers a key for up to 30 s, so it can lag by a minute and a half); never the key itself.",
    security: bearer,
    responses: described({ 200: "your keys, newest first, without the keys themselves" }),
  },
  deleteKey: {
    tags: ["api keys"],
    summary: "Delete an API key",
    description:
      "204 at once; every gateway replica refuses the key within 60 s (each remembers what auth said about a key for at most 30 s). 404 for a key that is not yours or is gone already.",
    security: bearer,
    responses: {
      ...answers({ 204: "the key is deleted; it stops working within a minute" }, 401, 403, 404, 503),
      ...described({ 422: "`id` is not a key's id (a positive integer): `errors` names it" }),
    },
  },
});
