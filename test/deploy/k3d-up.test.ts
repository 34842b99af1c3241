// scripts/k3d-up.sh's choice of autoscaler (K3D_OVERLAY), run with docker, k3d, kubectl, helm and bun replaced by
// stand-ins that record their arguments: the order of what it asks the cluster is what keeps the two autoscalers apart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, read } from "./support.ts";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "m3dio-k3d-up-"));
  // every tool logs its argv; the cluster answers per STUB_CLUSTER_EXISTS and STUB_KEDA
  const stand = `#!/usr/bin/env bash
tool=$(basename "$0")
echo "$tool $*" >>"$STUB_LOG"
case "$tool $*" in
  "k3d cluster get"*) [ "$STUB_CLUSTER_EXISTS" = 1 ] ;;
  "kubectl get crd scaledobjects.keda.sh") [ "$STUB_KEDA" = 1 ] ;;
  "kubectl kustomize"*) echo "kind: Rendered" ;;
  "kubectl apply -f -") cat >/dev/null ;;
  *"jsonpath={.status.hpaName}"*) echo keda-hpa-converter ;;
esac
`;
  for (const tool of ["docker", "k3d", "kubectl", "helm", "bun", "ffmpeg", "ffprobe"]) {
    writeFileSync(join(dir, tool), stand);
    chmodSync(join(dir, tool), 0o755);
  }
  // a complete secrets.env, so k3d:up keeps it and needs no bun of its own
  writeFileSync(join(dir, "secrets.env"), read("k3d/secrets.env.example"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs k3d:up against the stand-ins; answers its exit code, stderr and the tools' calls in order. */
function k3dUp(env: { K3D_OVERLAY?: string; STUB_KEDA: "0" | "1"; STUB_CLUSTER_EXISTS?: "0" | "1" }) {
  const log = join(dir, `calls-${Math.random().toString(36).slice(2)}`);
  writeFileSync(log, "");
  const run = Bun.spawnSync(["bash", join(ROOT, "scripts/k3d-up.sh")], {
    env: {
      PATH: `${dir}:/usr/bin:/bin`,
      HOME: dir,
      STUB_LOG: log,
      K3D_SECRETS_FILE: join(dir, "secrets.env"),
      STUB_CLUSTER_EXISTS: "1",
      ...env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const calls = readFileSync(log, "utf8").trim().split("\n");
  return { code: run.exitCode, stderr: run.stderr.toString(), calls };
}
const indexOf = (calls: string[], call: string | RegExp) =>
  calls.findIndex((line) => (typeof call === "string" ? line === call : call.test(line)));

describe("k3d:up's autoscaler (K3D_OVERLAY)", () => {
  test("keda: installs KEDA when missing, deletes the CPU autoscaler before the ScaledObject arrives, waits until KEDA reads the queue", () => {
    const { code, calls } = k3dUp({ K3D_OVERLAY: "keda", STUB_KEDA: "0" });
    expect(code).toBe(0);
    const version = read("scripts/k3d-up.sh").match(/^KEDA_VERSION=(\S+)/m)?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    const install = indexOf(calls, /^helm upgrade --install keda keda --repo https:\/\/kedacore\.github\.io\/charts /);
    expect(calls[install]).toContain(`--version ${version} `);
    const deleteHpa = indexOf(calls, "kubectl -n m3dio delete horizontalpodautoscaler converter --ignore-not-found");
    const render = indexOf(calls, "kubectl kustomize --load-restrictor LoadRestrictionsNone k3d/overlays/keda");
    const apply = indexOf(calls, "kubectl apply -f -");
    const ready = indexOf(calls, /^kubectl -n m3dio wait --for=condition=Ready scaledobject\/converter /);
    const metric = indexOf(calls, /wait --for=condition=ScalingActive horizontalpodautoscaler\/keda-hpa-converter /);
    const smoke = indexOf(calls, "bun scripts/smoke.ts http://localhost:8080");
    for (const step of [install, deleteHpa, render, apply, ready, metric, smoke])
      expect(step).toBeGreaterThanOrEqual(0);
    expect([install, deleteHpa, apply, ready, metric, smoke]).toEqual(
      [install, deleteHpa, apply, ready, metric, smoke].toSorted((a, b) => a - b),
    );
    expect(calls).not.toContain("kubectl apply -k k3d");
  });

  test("keda with KEDA already there: no install", () => {
    const { code, calls } = k3dUp({ K3D_OVERLAY: "keda", STUB_KEDA: "1" });
    expect(code).toBe(0);
    expect(indexOf(calls, /^helm /)).toBe(-1);
  });

  test("base (the default) after keda: deletes the ScaledObject, with the HPA KEDA made, before the CPU autoscaler returns", () => {
    const { code, calls } = k3dUp({ STUB_KEDA: "1" });
    expect(code).toBe(0);
    const deleteScaled = indexOf(
      calls,
      "kubectl -n m3dio delete scaledobject converter --ignore-not-found --cascade=foreground --wait",
    );
    const apply = indexOf(calls, "kubectl apply -k k3d");
    expect(deleteScaled).toBeGreaterThanOrEqual(0);
    expect(apply).toBeGreaterThan(deleteScaled);
    expect(indexOf(calls, /delete horizontalpodautoscaler/)).toBe(-1);
    expect(indexOf(calls, /^helm /)).toBe(-1);
  });

  test("base on a cluster without KEDA: nothing of KEDA's is touched", () => {
    const { code, calls } = k3dUp({ K3D_OVERLAY: "base", STUB_KEDA: "0", STUB_CLUSTER_EXISTS: "0" });
    expect(code).toBe(0);
    expect(calls).toContain("k3d cluster create --config k3d/cluster.yaml");
    expect(calls.filter((line) => /scaledobject|^helm |keda/i.test(line))).toEqual([
      "kubectl get crd scaledobjects.keda.sh",
    ]);
    expect(calls).toContain("kubectl apply -k k3d");
  });

  test("any other K3D_OVERLAY stops before touching anything, naming the two choices", () => {
    const { code, stderr, calls } = k3dUp({ K3D_OVERLAY: "hpa", STUB_KEDA: "0" });
    expect(code).toBe(1);
    expect(stderr).toContain("K3D_OVERLAY is base");
    expect(stderr).toContain("keda");
    expect(calls).toEqual([""]);
  });
});
