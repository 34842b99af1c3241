#!/usr/bin/env bun
// m3dio's command-line client: `bun run cli <command>` from a checkout, or `m3dio <command>`
// once linked (package.json `bin`). Log in once, then convert files or links to MP3s, list,
// download and delete jobs, and manage API keys and webhooks.
//
// Data goes to stdout (a saved file's path, a table, JSON with --json, the MP3 with -o -);
// messages and progress bars to stderr (bars only on a terminal, and not with --quiet).
// Exit codes (cli/errors.ts): 0 ok, 1 usage, 2 auth, 3 refused, 4 unavailable, 5 the
// conversion failed; 130 interrupted (cli/interrupt.ts).
import { Command } from "commander";
import { Api, type GlobalOptions } from "./api.ts";
import { configPath } from "./config.ts";
import { convertCommand } from "./convert.ts";
import { EXIT, report } from "./errors.ts";
import { handleInterrupts } from "./interrupt.ts";
import { jobCommands } from "./jobs.ts";
import { keyCommands } from "./keys.ts";
import { loginCommands } from "./login.ts";
import { webhookCommands } from "./webhooks.ts";

const program = new Command("m3dio")
  .description("Turn videos into MP3s on an m3dio server.")
  .version((await import("../package.json")).version)
  .option("--server <url>", "the server (else M3DIO_SERVER, else the one logged in to, else http://localhost:8080)")
  .option("-q, --quiet", "no progress bars or notes on stderr (errors still)")
  .showHelpAfterError("(m3dio --help lists the commands, m3dio <command> --help their options)")
  .addHelpText(
    "after",
    `
The login (or API key) is kept in ${configPath()} (only you can read it).
M3DIO_API_KEY, if set, is used instead of it.

Exit codes: 0 done; 1 the command is wrong; 2 not logged in, or the login or key was refused;
3 the server refused the request (its reason is printed); 4 the server could not be reached
or had trouble; 5 the conversion failed (the job's error is printed); 130 interrupted.`,
  );

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
const connect = () => ({ api: new Api(globals()), globals: globals() });

loginCommands(program, globals);
convertCommand(program, connect);
jobCommands(program, connect);
keyCommands(program, connect);
webhookCommands(program, connect);

handleInterrupts();
try {
  await program.parseAsync(process.argv);
  process.exitCode = EXIT.ok;
} catch (error) {
  process.exitCode = report(error);
}
