// The account routes' bodies and answers, defined once: auth validates with them, the
// gateway validates the same bodies before forwarding and documents them (with these
// examples) in its OpenAPI document (gateway/account-models.ts).
import { t } from "elysia";

export const Email = t.String({
  format: "email",
  maxLength: 254,
  error: "must be an email address",
  examples: ["ada@example.com"],
});
export const Password = t.String({
  minLength: 8,
  maxLength: 256,
  error: "must be 8 to 256 characters",
  examples: ["correct horse battery"],
});
/** A password being checked, not chosen: any length up to the limit (an account may predate a rule). */
const CurrentPassword = t.String({
  maxLength: 256,
  error: "must be at most 256 characters",
  examples: ["correct horse"],
});

/** An opaque token (a refresh token, or the token of an emailed link): 43 base64url characters. */
export const OpaqueToken = (description: string) =>
  t.String({
    pattern: "^[A-Za-z0-9_-]{43}$",
    error: "must be a token as it was given (43 characters)",
    description,
    examples: ["PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY"],
  });

export const Credentials = t.Object(
  { email: Email, password: Password },
  { examples: [{ email: "ada@example.com", password: "correct horse battery" }] },
);

/** Login checks only the lengths (an account may predate a rule of registration's). */
export const LoginBody = t.Object(
  {
    email: t.String({ maxLength: 254, error: "must be at most 254 characters" }),
    password: t.String({ maxLength: 256, error: "must be at most 256 characters" }),
  },
  { examples: [{ email: "ada@example.com", password: "correct horse battery" }] },
);

export const Registered = t.Object(
  {
    id: t.Integer(),
    email: t.String(),
    verified: t.Boolean({ description: "false until the link in the verification email is opened" }),
  },
  { examples: [{ id: 42, email: "ada@example.com", verified: false }] },
);

export const Session = t.Object(
  {
    token: t.String({ description: "a JWT to send as `Authorization: Bearer <token>`" }),
    expiresAt: t.String({ format: "date-time" }),
    refreshToken: t.String({
      description: "keep it safe: `POST /auth/refresh` trades it (once) for a new pair; `POST /auth/logout` ends it",
    }),
    refreshExpiresAt: t.String({ format: "date-time", description: "30 days after it was given" }),
  },
  {
    examples: [
      {
        token: "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",
        expiresAt: "2026-12-01T13:00:00.000Z",
        refreshToken: "PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY",
        refreshExpiresAt: "2026-12-31T12:00:00.000Z",
      },
    ],
  },
);

export const VerifyBody = t.Object(
  { token: OpaqueToken("the `token` of the verification link (`/verify?token=…`)") },
  { examples: [{ token: "PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY" }] },
);
export const Verified = t.Object({ verified: t.Literal(true) }, { examples: [{ verified: true }] });

export const RefreshBody = t.Object(
  { refreshToken: OpaqueToken("the refresh token of the last login or refresh") },
  { examples: [{ refreshToken: "PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY" }] },
);

export const ForgotBody = t.Object({ email: Email }, { examples: [{ email: "ada@example.com" }] });

export const ResetBody = t.Object(
  { token: OpaqueToken("the `token` of the reset link (`/reset?token=…`)"), password: Password },
  { examples: [{ token: "PF3Kco4n_ybkRluav_vS_WQJqbh5gPkPPq-OwTACoNY", password: "a new good password" }] },
);

export const ChangePasswordBody = t.Object(
  { currentPassword: CurrentPassword, newPassword: Password },
  { examples: [{ currentPassword: "correct horse battery", newPassword: "a new good password" }] },
);

export const DeleteAccountBody = t.Object(
  { password: CurrentPassword },
  { examples: [{ password: "correct horse battery" }] },
);

// ── API keys (auth/api-keys.ts) ──────────────────────────────────────────────
const KEY_EXAMPLE = "m3d_8J2kq0x7VYlXc3o0Bq5tQm1rS9wZpE4uN6aHfD2gLkY";

export const NewApiKeyBody = t.Object(
  {
    name: t.String({
      minLength: 1,
      maxLength: 100,
      pattern: "\\S",
      error: "must be 1 to 100 characters, not only spaces",
      description: "what the key is for, to tell it apart in the list",
    }),
  },
  { examples: [{ name: "nightly backup script" }] },
);

export const CreatedApiKey = t.Object(
  {
    id: t.Integer(),
    name: t.String(),
    key: t.String({
      description:
        "the key itself, shown this once (only its hash is kept): send it as `Authorization: Bearer m3d_…` on the job and webhook routes",
    }),
    createdAt: t.String({ format: "date-time" }),
  },
  { examples: [{ id: 7, name: "nightly backup script", key: KEY_EXAMPLE, createdAt: "2026-12-01T12:00:00.000Z" }] },
);

export const ApiKeyInfo = t.Object({
  id: t.Integer(),
  name: t.String(),
  prefix: t.String({ description: "the key's first characters, to tell which key a program holds" }),
  createdAt: t.String({ format: "date-time" }),
  lastUsedAt: t.Union([t.String({ format: "date-time" }), t.Null()], {
    description:
      "when a request last used it; null if never. Moved at most once a minute, and each gateway remembers a key up to 30 s, so it may lag by about a minute and a half",
  }),
});

export const ApiKeyList = t.Object(
  { items: t.Array(ApiKeyInfo) },
  {
    examples: [
      {
        items: [
          {
            id: 7,
            name: "nightly backup script",
            prefix: "m3d_8J2kq0x7",
            createdAt: "2026-12-01T12:00:00.000Z",
            lastUsedAt: "2026-12-02T03:00:00.000Z",
          },
        ],
      },
    ],
  },
);

/** The id in `/keys/:id`: a positive integer, nothing that could reach another path. */
export const ApiKeyParams = t.Object({ id: t.Numeric({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

/** The gateway's question to auth (internal): whose is this key? */
export const KeyIntrospectionBody = t.Object({ key: t.String({ maxLength: 64 }) });
export const KeyOwner = t.Object({
  userId: t.String(),
  email: t.String(),
  emailVerified: t.Boolean(),
  keyId: t.Integer(),
});
