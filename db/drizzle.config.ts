import { defineConfig } from "drizzle-kit";

// `bun run db:generate` writes SQL migrations from db/schema.ts; they are committed.
export default defineConfig({
  dialect: "mysql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
