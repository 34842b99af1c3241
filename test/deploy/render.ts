// Renders k3d/ and its keda overlay with `kubectl kustomize` once per test file, for test/deploy/k3d*.test.ts.
import { afterAll, beforeAll } from "bun:test";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kustomize } from "./manifests.ts";
import { type Doc, ROOT } from "./support.ts";

/** Registers the hooks in the calling test file; the arrays are filled once its beforeAll has run. */
export function renderK3d(): { base: Doc[]; keda: Doc[] } {
  let workDir = "";
  const base: Doc[] = [];
  const keda: Doc[] = [];
  beforeAll(() => {
    if (!Bun.which("kubectl")) {
      throw new Error(
        "kubectl is not on the PATH: these tests render k3d/ with `kubectl kustomize` (kubectl ≥ 1.27; Debian/CI: apt package kubectl)",
      );
    }
    // Render a copy, with secrets.env from the committed example: the real one is never committed.
    workDir = mkdtempSync(join(tmpdir(), "m3dio-deploy-"));
    cpSync(join(ROOT, "k3d"), join(workDir, "k3d"), {
      recursive: true,
      filter: (source) => !source.endsWith("/secrets.env"),
    });
    cpSync(join(ROOT, "k3d/secrets.env.example"), join(workDir, "k3d/secrets.env"));
    base.push(...kustomize([join(workDir, "k3d")]));
    keda.push(...kustomize(["--load-restrictor", "LoadRestrictionsNone", join(workDir, "k3d/overlays/keda")]));
  });
  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });
  return { base, keda };
}
