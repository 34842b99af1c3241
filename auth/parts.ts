// What auth's route modules are built from: the stores and helpers createAuth makes once.
import type { Logger } from "../lib/log.ts";
import type { AccessTokens } from "./access-tokens.ts";
import type { AccountStore } from "./accounts.ts";
import type { Admission } from "./admission.ts";
import type { ApiKeyStore } from "./api-keys.ts";
import type { Background } from "./background.ts";
import type { AccountDeletion } from "./deletion.ts";
import type { EmailSender, EmailTokenStore } from "./email-tokens.ts";
import type { SessionStore } from "./session-store.ts";

export interface AuthParts {
  log: Logger;
  accounts: AccountStore;
  apiKeys: ApiKeyStore;
  sessions: SessionStore;
  emailTokens: EmailTokenStore;
  sender: EmailSender;
  deletion: AccountDeletion;
  tokens: AccessTokens;
  gate: Admission;
  background: Background;
}
