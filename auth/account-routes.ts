// Deleting the account (bearer, and the password once more): auth/deletion.ts does it in
// steps a crash cannot leave half done for good.
import { Elysia } from "elysia";
import { DeleteAccountBody } from "../lib/account-models.ts";
import { limitedJson } from "../lib/json.ts";
import { bearerCaller } from "./access-tokens.ts";
import type { AuthParts } from "./parts.ts";
import { checkPassword } from "./passwords.ts";

export const accountRoutes = (parts: AuthParts) =>
  new Elysia({ name: "auth.account" }).use(bearerCaller(parts.tokens, parts.accounts)).delete(
    "/account",
    async ({ body, caller, request, server, status }) => {
      await checkPassword(parts, caller, body.password, { field: "password", request, server });
      await parts.deletion.delete(caller);
      return status(204, undefined);
    },
    {
      caller: true,
      parse: limitedJson(),
      body: DeleteAccountBody,
      detail: { tags: ["auth"], summary: "Delete your account with its jobs, files, keys and webhooks (bearer)" },
    },
  );
