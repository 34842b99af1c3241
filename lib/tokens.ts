// What auth puts into every token and the gateway insists on: who issued it and for
// whom. A token signed with auth's key for anything else (or by a later service with
// the same key) is not a gateway token.
export const TOKEN_ISSUER = "m3dio-auth";
export const TOKEN_AUDIENCE = "m3dio-gateway";
/** The longest lifetime auth gives a token (JWT_TTL_SECONDS' maximum): older ones are refused whatever their `exp`. */
export const MAX_TOKEN_SECONDS = 7 * 24 * 3600;
