// The caller's account as the gateway sees it: GET /account/usage, the quotas and what is
// used of them (gateway/quotas.ts), for a bearer token or an API key.
import { Elysia } from "elysia";
import { bearer, type TokenVerifier, USER_OR_KEY } from "./bearer.ts";
import { gatewayModels } from "./models.ts";
import type { Quotas } from "./quotas.ts";
import { accountDocs } from "./route-docs.ts";

export const accountRoutes = ({ quotas, verifier }: { quotas: Quotas; verifier: TokenVerifier }) =>
  new Elysia({ name: "gateway.account-routes" })
    .use(gatewayModels)
    .use(bearer(verifier))
    .guard({ auth: "user-or-key", detail: { security: USER_OR_KEY } }, (app) =>
      app.get("/account/usage", ({ user }) => quotas.current(user.id), {
        response: { 200: "Usage", 401: "Problem" },
        detail: accountDocs.usage,
      }),
    );
