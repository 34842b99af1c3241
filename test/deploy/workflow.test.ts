// .github/workflows/ci.yml as parsed: what its jobs run, against which service containers, and with what pinned tools.
import { describe, expect, test } from "bun:test";
import { environment, interpolate, services } from "./compose.ts";
import { type Doc, read } from "./support.ts";

const workflow = Bun.YAML.parse(read(".github/workflows/ci.yml")) as Doc;
const jobs = workflow.jobs as Record<string, Doc>;

describe("GitHub workflow", () => {
  test("the suite administers RabbitMQ over the management API in the test job and compose's test profile", () => {
    // test/support/rabbit.ts takes this path only with RABBITMQ_API_URL set; .ci/run uses rabbitmqctl, so these two
    // runs are where the API path is exercised on every push
    const job = jobs.test!;
    const broker = job.services.rabbitmq;
    expect(broker.image).toMatch(/-management$/);
    expect(broker.ports).toContain("15672:15672");
    const api = new URL(job.env.RABBITMQ_API_URL);
    const amqp = new URL(job.env.AMQP_URL);
    expect([api.hostname, api.port, api.username, api.password]).toEqual([
      amqp.hostname,
      "15672",
      amqp.username,
      amqp.password,
    ]);
    const runner = environment(services.test!);
    expect(new URL(interpolate(runner.RABBITMQ_API_URL!)).hostname).toBe("rabbitmq");
    expect(services.rabbitmq!.image).toMatch(/-management$/);
    expect(job.steps.map((step: Doc) => step.run)).toContain("bun run test");
  });

  test("the test job's stores get 10 s and more per healthcheck, checked often while they start", () => {
    for (const [name, service] of Object.entries(jobs.test!.services as Record<string, Doc>)) {
      const options = String(service.options);
      const flag = (flagName: string) => Number(options.match(new RegExp(`--${flagName} (\\d+)s`))?.[1]);
      expect(flag("health-timeout"), name).toBeGreaterThanOrEqual(10);
      expect(flag("health-start-interval"), name).toBeLessThan(flag("health-interval"));
      expect(flag("health-start-period"), name).toBeGreaterThanOrEqual(60);
    }
  });

  test("the k3d job switches the converters' autoscaler to KEDA and back, each time through the smoke test", () => {
    const runs = (jobs.k3d!.steps as Doc[]).map((step) => String(step.run ?? ""));
    const ups = runs.flatMap((run, index) => (/\bbun run k3d:up$/.test(run.trim()) ? [index] : []));
    expect(ups.map((index) => runs[index]!.trim())).toEqual([
      "bun run k3d:up",
      "K3D_OVERLAY=keda bun run k3d:up",
      "bun run k3d:up",
    ]);
    const [, keda, back] = ups;
    const checksAfter = (index: number) => runs.slice(index + 1).find((run) => run.includes("scaledobject"))!;
    expect(checksAfter(keda!)).toContain('test -z "$(kubectl -n m3dio get horizontalpodautoscaler converter');
    expect(checksAfter(back!)).toContain('test -z "$(kubectl -n m3dio get scaledobject converter');
  });
});

describe("pinned tools", () => {
  const scripts = ["scripts/k3d-up.sh", "scripts/k3d-down.sh", ".github/workflows/ci.yml"];

  test("k3d comes from its release's install script, at the tag it installs", () => {
    const install = (jobs.k3d!.steps as Doc[])
      .map((step) => String(step.run ?? ""))
      .find((run) => run.includes("k3d"))!;
    const [, ref, tag] =
      install.match(/raw\.githubusercontent\.com\/k3d-io\/k3d\/([^/]+)\/install\.sh \| TAG=(\S+) bash/) ?? [];
    expect(ref).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(tag).toBe(ref!);
  });

  test("nothing is fetched from a moving branch or 'latest', and a kubectl download is checked against its .sha256", () => {
    for (const path of scripts) {
      const text = read(path);
      for (const url of text.match(/https?:\/\/[^\s"'|)]+/g) ?? []) {
        expect(url, `${path}: ${url}`).not.toMatch(/\/(main|master|latest|stable)(\/|$)/);
      }
      // dl.k8s.io publishes <binary>.sha256 beside each kubectl; a download without its check is a hole
      if (/dl\.k8s\.io\/[^\s]*\/kubectl/.test(text)) {
        expect(text, path).toMatch(/kubectl\.sha256/);
        expect(text, path).toMatch(/sha256sum (--check|-c)/);
      }
    }
  });

  test("the k3s image is pinned, and the Traefik comments name the k3s release they were written for", () => {
    const cluster = Bun.YAML.parse(read("k3d/cluster.yaml")) as Doc;
    const [, version] = String(cluster.image).match(/^rancher\/k3s:(v1\.\d+\.\d+)-k3s\d+$/) ?? [];
    expect(version).toBeDefined();
    const release = String(cluster.image).split(":")[1]!.replace("-k3s", "+k3s");
    const namesRelease = new RegExp(`${release.replace(/[.+]/g, "\\$&")}(?![\\d.])`);
    for (const path of ["k3d/traefik-config.yaml", "k3d/ingress.yaml", "k3d/cluster.yaml"]) {
      const comments = read(path).replace(/\n#\s*/g, " ");
      expect(comments, path).toMatch(namesRelease);
      expect(comments, path).toMatch(/Traefik v3\.\d+\.\d+/);
    }
    // and the k3d that cluster.yaml says it was tried with is the one CI installs
    const k3dTag = read(".github/workflows/ci.yml").match(/TAG=(v[\d.]+)/)?.[1];
    expect(read("k3d/cluster.yaml")).toContain(`k3d ${k3dTag} `);
  });
});
