/**
 * What an idle meshd loads (issue 17, footprint): the HTTP side's routes (hono and its node
 * adapter) wait for the first request and the YAML parser for the first YAML, so a daemon nobody
 * scrapes and nobody configures from YAML holds neither. A real meshd child (the built bin) on a
 * real nats-server, watched by test/support/module-probe.mjs.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, makeTempDir, NatsServer, removeTempDir, waitFor } from "./harness/index.js";
import { type MeshdProcess, REPO_ROOT, spawnMeshd } from "./support/mesh.js";

const PROBE = join(REPO_ROOT, "test", "support", "module-probe.mjs");
const inPackage = (name: string) => (line: string) => line.includes(`/node_modules/${name}/`);

describe("an idle meshd", () => {
  let server: NatsServer;
  let meshd: MeshdProcess;
  let dir: string;
  let port: number;
  let out: string;
  const loaded = (): string[] => (existsSync(out) ? readFileSync(out, "utf8").split("\n") : []);

  beforeAll(async () => {
    server = await NatsServer.start();
    dir = await makeTempDir("idle-footprint-");
    out = join(dir, "modules.txt");
    port = await freePort();
    meshd = await spawnMeshd(
      ["--nats", server.url, "--http-port", String(port), "--presence-interval", "500ms", "--log-level", "warn"],
      { NODE_OPTIONS: `--import ${PROBE}`, MODULE_PROBE_OUT: out },
    );
    await waitFor(() => existsSync(join(meshd.stateDir, "meshd.sock")), { name: "meshd up", timeoutMs: 30_000 });
  }, 60_000);

  afterAll(async () => {
    await meshd?.stop(5000);
    await server?.stop();
    if (dir) await removeTempDir(dir);
  });

  it("loads hono at the first HTTP request and yaml not at all", async () => {
    // The probe sees the daemon's modules (its gRPC server is up).
    await waitFor(() => loaded().some(inPackage("@grpc/grpc-js")), { name: "probe lists grpc-js" });
    // Idle for a few presence rounds: a sleep only to show nothing loads them meanwhile.
    await new Promise((r) => setTimeout(r, 2000));
    const lazy = (l: string) => inPackage("hono")(l) || inPackage("@hono/node-server")(l) || inPackage("yaml")(l);
    expect(loaded().filter(lazy)).toEqual([]);

    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("# TYPE");
    await waitFor(() => loaded().some(inPackage("hono")), { name: "probe lists hono" });
    expect(loaded().some(inPackage("yaml"))).toBe(false);
  }, 60_000);
});
