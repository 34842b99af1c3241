// The Dockerfile and .dockerignore: base image, runtime and build stages, and what reaches the build context.
import { describe, expect, test } from "bun:test";
import { dockerignored, dockerStages, PRESENT, read, stageChain } from "./support.ts";

describe("Dockerfile", () => {
  const { args, stages } = dockerStages();

  test("every stage starts from the official Bun image at the version CI installs", () => {
    const ciVersion = read(".ci/run").match(/^BUN_VERSION=(\S+)/m)?.[1];
    const workflowVersion = read(".github/workflows/ci.yml").match(/BUN_VERSION:\s*(\S+)/)?.[1];
    expect(args.BUN_VERSION).toBe(ciVersion!);
    expect(workflowVersion).toBe(ciVersion!);
    const roots = stages.filter((stage) => !stages.some((other) => other.name === stage.from));
    expect(roots.map((stage) => stage.from)).toEqual([`oven/bun:${ciVersion}-slim`]);
  });

  test("the runtime image has ffmpeg, production dependencies from the lockfile, the code and migrations, and runs as uid 1000", () => {
    const chain = stageChain(stages, "runtime");
    expect(chain.map((stage) => stage.name)).toContain("base");
    const all = chain.flatMap((stage) => stage.instructions).join("\n");
    expect(all).toMatch(/apt-get install[^\n]*\bffmpeg\b/);
    const runtime = chain[0]!.instructions;
    expect(runtime).toContain("USER 1000:1000");
    const deps = stages.find((stage) =>
      runtime.some((line) => line.startsWith(`COPY --from=${stage.name} `) && line.includes("node_modules")),
    );
    expect(deps?.instructions.join("\n")).toMatch(/bun install --frozen-lockfile --production/);
    // the source copied in: nothing the services or the migrate job need may be filtered out
    for (const path of [
      "auth.ts",
      "package.json",
      "bun.lock",
      "lib/config.ts",
      "db/migrate.ts",
      "db/migrations/meta/_journal.json",
      ...PRESENT.map((name) => `${name}.ts`),
    ]) {
      expect(dockerignored(path), `${path} is excluded by .dockerignore`).toBe(false);
    }
    const source = stages.find((stage) =>
      runtime.some((line) => line.startsWith(`COPY --from=${stage.name} `) && !line.includes("node_modules")),
    );
    const removed = source?.instructions.find((line) => line.startsWith("RUN rm "))?.split(/\s+/) ?? [];
    for (const needed of ["db", "lib", "package.json"]) expect(removed).not.toContain(needed);
    expect(chain[0]!.instructions.at(-1)).toMatch(/^CMD \["bun", "\w+\.ts"\]$/);
  });

  test("the runtime and build images install yt-dlp from PyPI at the pinned YT_DLP_VERSION (links to video pages)", () => {
    expect(args.YT_DLP_VERSION).toMatch(/^\d{4}\.\d{1,2}\.\d{1,2}$/);
    for (const target of ["runtime", "build"]) {
      const all = stageChain(stages, target)
        .flatMap((stage) => stage.instructions)
        .join("\n");
      expect(all, target).toContain("ARG YT_DLP_VERSION");
      expect(all, target).toMatch(/pip install[^\n]*"yt-dlp==\$\{YT_DLP_VERSION\}"/);
    }
  });

  test(".dockerignore keeps dependencies, git, secrets and test artifacts out of the build context", () => {
    for (const path of [
      "node_modules",
      "node_modules/elysia/package.json",
      ".git",
      ".git/HEAD",
      ".env",
      ".env.local",
      "k3d/secrets.env",
      "test-artifacts/x.png",
    ]) {
      expect(dockerignored(path), `${path} should be ignored`).toBe(true);
    }
  });

  test("the build stage has every dependency, the tests and ffmpeg, for compose's test profile", () => {
    const chain = stageChain(stages, "build");
    expect(chain.map((stage) => stage.name)).toContain("base");
    const build = chain[0]!.instructions.join("\n");
    expect(build).toMatch(/bun install --frozen-lockfile(?! --production)/);
    expect(build).toMatch(/COPY (--chown=\S+ )?\. \./);
    expect(build).toContain("/usr/local/bin/kubectl"); // the k3d checks (test/deploy/k3d.test.ts) run in there too
    // what the suite reads must reach the build context
    for (const path of [
      "test/auth.test.ts",
      "test/support/preload.ts",
      ".ci/run",
      ".github/workflows/ci.yml",
      "k3d/kustomization.yaml",
      "k3d/secrets.env.example",
      ".gitignore",
      "scripts/k3d-up.sh",
    ]) {
      expect(dockerignored(path), `${path} is excluded by .dockerignore`).toBe(false);
    }
  });
});
