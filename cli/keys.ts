// `m3dio keys`: list, create and delete API keys (POST/GET/DELETE /auth/keys). Keys are an
// account matter, so these take the login's session, never an API key. A new key is shown
// once, on stdout, for the caller to keep.
import type { Command } from "commander";
import type { ApiKeyList, CreatedApiKey } from "../lib/account-models.ts";
import type { Api, GlobalOptions } from "./api.ts";
import { say } from "./progress.ts";
import { minute, printJson, table } from "./table.ts";

type KeyList = typeof ApiKeyList.static;
type NewKey = typeof CreatedApiKey.static;

export function keyCommands(program: Command, connect: () => { api: Api; globals: GlobalOptions }): void {
  const keys = program
    .command("keys")
    .description("your API keys: for programs, `Authorization: Bearer m3d_…` on the job and webhook routes");

  keys
    .command("list", { isDefault: true })
    .description("your keys (never the keys themselves: their first characters)")
    .option("--json", "as JSON")
    .action(async (options: { json?: boolean }) => {
      const { items } = await connect().api.json<KeyList>("/auth/keys", "could not list the keys", { auth: "session" });
      if (options.json) return void printJson(items);
      process.stdout.write(
        table(
          ["ID", "NAME", "KEY", "CREATED (UTC)", "LAST USED (UTC)"],
          items.map((key) => [
            String(key.id),
            key.name,
            `${key.prefix}…`,
            minute(key.createdAt),
            minute(key.lastUsedAt),
          ]),
        ),
      );
    });

  keys
    .command("create <name>")
    .description("make a key (printed once: keep it; m3dio login --key uses it here)")
    .option("--json", "as JSON: {id, name, key, createdAt}")
    .action(async (name: string, options: { json?: boolean }) => {
      const { api, globals } = connect();
      const created = await api.json<NewKey>("/auth/keys", "could not create the key", {
        method: "POST",
        auth: "session",
        json: { name },
      });
      if (options.json) printJson(created);
      else process.stdout.write(`${created.key}\n`);
      say(globals.quiet, `Key ${created.id} "${created.name}": shown this once, keep it safe`);
    });

  keys
    .command("delete <id>")
    .description("delete a key: programs using it are refused within a minute")
    .action(async (id: string) => {
      const { api, globals } = connect();
      await api.call(`/auth/keys/${encodeURIComponent(id)}`, "could not delete the key", {
        method: "DELETE",
        auth: "session",
      });
      say(globals.quiet, `Deleted key ${id}`);
    });
}
