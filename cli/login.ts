// `m3dio login` and `m3dio logout`: a session (email and password, traded for a refresh
// token that is kept, never the password) or an API key, stored in the config file.
import input from "@inquirer/input";
import password from "@inquirer/password";
import type { Command } from "commander";
import { isApiKey } from "../lib/api-keys.ts";
import { Api, type GlobalOptions, type SessionTokens, serverUrl, storedSession } from "./api.ts";
import { readConfig, type StoredConfig, updateConfig } from "./config.ts";
import { CliError, EXIT } from "./errors.ts";
import { say } from "./progress.ts";

interface LoginOptions {
  email?: string;
  password?: string;
  key?: string;
}

export function loginCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command("login")
    .description("log in and remember it (or remember an API key); the server given with --server is remembered too")
    .option("--email <address>", "your email address (or M3DIO_EMAIL; asked for when missing)")
    .option("--password <password>", "your password (or M3DIO_PASSWORD; asked for, hidden, when missing)")
    .option("--key <m3d_…>", "use this API key instead of a login (m3dio keys create makes one)")
    .action((options: LoginOptions) => login(globals(), options));

  program
    .command("logout")
    .description("end the session on the server and forget it here (an API key is forgotten here, and keeps working)")
    .action(() => logout(globals()));
}

async function login(globals: GlobalOptions, options: LoginOptions): Promise<void> {
  const server = serverUrl(globals.server);
  // Logging in to another server starts afresh; on the same one the other kind of credential stays.
  const keep = (config: StoredConfig): StoredConfig => (config.server === server ? config : {});
  const api = new Api({ ...globals, server });
  if (options.key !== undefined) {
    const key = options.key.trim();
    if (!isApiKey(key)) throw new CliError(EXIT.usage, "an API key is m3d_ and 43 characters, as it was shown");
    // One cheap authenticated call proves the key before it is kept.
    await api.call("/jobs?limit=1", "the key was refused", {
      headers: { authorization: `Bearer ${key}` },
      auth: "none",
    });
    await updateConfig(async (config) => ({ config: { ...keep(config), server, apiKey: key }, result: undefined }));
    say(globals.quiet, `Using the API key ${key.slice(0, 8)}… with ${server}`);
    return;
  }
  const email = options.email ?? process.env.M3DIO_EMAIL ?? (await ask("Email"));
  const secret = options.password ?? process.env.M3DIO_PASSWORD ?? (await ask("Password", true));
  const session = await api.json<SessionTokens>("/auth/login", "could not log in", {
    method: "POST",
    auth: "none",
    json: { email, password: secret },
  });
  await updateConfig(async (config) => ({
    config: { ...keep(config), server, email, ...storedSession(session) },
    result: undefined,
  }));
  say(globals.quiet, `Logged in to ${server} as ${email}`);
}

/** Asks on the terminal (the prompt on stderr); a usage error when there is no one to ask. */
async function ask(what: string, hidden = false): Promise<string> {
  if (!process.stdin.isTTY)
    throw new CliError(
      EXIT.usage,
      `no ${what.toLowerCase()}: give --${what.toLowerCase()} (or M3DIO_${what.toUpperCase()})`,
    );
  const context = { output: process.stderr };
  const answer = hidden
    ? await password({ message: what, mask: "*" }, context)
    : await input({ message: what, required: true }, context);
  return answer.trim() ? answer : ask(what, hidden);
}

async function logout(globals: GlobalOptions): Promise<void> {
  const before = readConfig();
  // Forgotten here first: whatever the server says, this machine holds no credential after.
  await updateConfig(async (config) => ({
    config: { server: config.server },
    result: undefined,
  }));
  if (before.apiKey) say(globals.quiet, "Forgot the API key here; it works until it is deleted (m3dio keys delete)");
  if (!before.refreshToken) {
    if (!before.apiKey) say(globals.quiet, "Not logged in");
    return;
  }
  const api = new Api({ ...globals, server: globals.server ?? before.server });
  try {
    await api.call("/auth/logout", "could not end the session on the server", {
      method: "POST",
      auth: "none",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refreshToken: before.refreshToken }),
    });
  } catch (error) {
    if (error instanceof CliError)
      error.lines.push("  it is forgotten here; on the server it ends by itself within 30 days");
    throw error;
  }
  say(globals.quiet, `Logged out of ${api.server}`);
}
