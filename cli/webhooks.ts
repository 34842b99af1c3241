// `m3dio webhooks`: list, create and delete the addresses the server posts to when a job
// ends (POST/GET/DELETE /webhooks), and see what was posted (GET /webhooks/:id/deliveries).
// A new webhook's signing secret is shown once, on stdout.
import { type Command, Option } from "commander";
import type { CreatedWebhook, DeliveryView, WebhookView } from "../gateway/webhook-models.ts";

type NewWebhook = typeof CreatedWebhook.static;

import { WEBHOOK_EVENTS } from "../lib/webhooks.ts";
import type { Api, GlobalOptions } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";
import { say } from "./progress.ts";
import { minute, printJson, table } from "./table.ts";

type Connect = () => { api: Api; globals: GlobalOptions };

export function webhookCommands(program: Command, connect: Connect): void {
  const webhooks = program
    .command("webhooks")
    .description("addresses the server posts to when one of your jobs is done or failed");

  webhooks
    .command("list", { isDefault: true })
    .description("your webhooks")
    .option("--json", "as JSON")
    .action(async (options: { json?: boolean }) => {
      const { items } = await connect().api.json<{ items: WebhookView[] }>("/webhooks", "could not list the webhooks");
      if (options.json) return void printJson(items);
      const rows = items.map((hook) => [hook.id, hook.events.join(","), minute(hook.createdAt), hook.url]);
      process.stdout.write(table(["ID", "EVENTS", "CREATED (UTC)", "URL"], rows));
    });

  webhooks
    .command("create <url>")
    .description("post to this http(s) address when a job ends (prints the signing secret, once)")
    .addOption(new Option("--events <event...>", "which events (default: all)").choices([...WEBHOOK_EVENTS]))
    .option("--json", "as JSON: {id, url, events, createdAt, secret}")
    .action(async (url: string, options: { events?: string[]; json?: boolean }) => {
      const { api, globals } = connect();
      const created = await api.json<NewWebhook>("/webhooks", "could not create the webhook", {
        method: "POST",
        json: { url, ...(options.events ? { events: options.events } : {}) },
      });
      if (options.json) printJson(created);
      else process.stdout.write(`${created.secret}\n`);
      say(
        globals.quiet,
        `Webhook ${created.id} posts ${created.events.join(" and ")} to ${created.url}; the secret signs each post (shown this once)`,
      );
    });

  deliveriesCommand(webhooks, connect);

  webhooks
    .command("delete <id>")
    .description("stop posting to a webhook")
    .action(async (id: string) => {
      const { api, globals } = connect();
      await api.call(`/webhooks/${encodeURIComponent(id)}`, "could not delete the webhook", { method: "DELETE" });
      say(globals.quiet, `Deleted webhook ${id}`);
    });
}

/** `webhooks deliveries <id>`: the latest events posted, and how each went. */
function deliveriesCommand(webhooks: Command, connect: Connect): void {
  webhooks
    .command("deliveries <id>")
    .description("the latest events posted to a webhook, and how each went")
    .option("-n, --limit <count>", "at most this many (1 to 100)", "20")
    .option("--json", "as JSON")
    .action(async (id: string, options: { limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100)
        throw new CliError(EXIT.usage, "--limit must be a whole number from 1 to 100");
      const { items } = await connect().api.json<{ items: DeliveryView[] }>(
        `/webhooks/${encodeURIComponent(id)}/deliveries?limit=${limit}`,
        "could not read the deliveries",
      );
      if (options.json) return void printJson(items);
      const rows = items.map((delivery) => [
        minute(delivery.createdAt),
        delivery.event,
        delivery.jobId,
        delivery.state,
        String(delivery.attempts),
        delivery.lastStatus === undefined ? (delivery.lastError ?? "") : String(delivery.lastStatus),
      ]);
      process.stdout.write(table(["WHEN (UTC)", "EVENT", "JOB", "STATE", "TRIES", "LAST ANSWER"], rows));
    });
}
