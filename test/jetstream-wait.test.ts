/**
 * A daemon started before its JetStream answers waits for it: here meshd connects to a leaf
 * nats-server whose hub (the JetStream domain `hub`) is not up yet, logs that it waits, and
 * starts once the hub is there and the leaf link is up (the `mesh up --leaf` case, and a cluster
 * still electing its leader).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { type ConfServer, startConfServer } from "./support/conf-server.js";
import { type MeshdProcess, openClient, spawnMeshd } from "./support/mesh.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await removeTempDirs();
});

describe("a JetStream that is not there yet", () => {
  it("is waited for at start; the daemon starts once it answers", async () => {
    const dir = await makeTempDir("js-wait-");
    const leafPort = await freePort();
    const leafConf = join(dir, "leaf.conf");
    await writeFile(
      leafConf,
      `listen: "127.0.0.1:-1"\nleafnodes { reconnect: 1, remotes: [ { url: "nats://127.0.0.1:${leafPort}" } ] }\n`,
    );
    const leaf: ConfServer = await startConfServer(leafConf);
    cleanups.push(() => leaf.stop());

    const meshd: MeshdProcess = await spawnMeshd([
      "--nats",
      leaf.url,
      "--nats-domain",
      "hub",
      "--name",
      "waiter",
      "--runners",
      "noop",
      "--no-http",
      "--log-level",
      "info",
    ]);
    cleanups.push(() => meshd.stop(10_000));
    let exited = false;
    void meshd.exited.then(() => {
      exited = true;
    });
    await waitFor(() => exited || meshd.stderr().includes("waiting for JetStream"), {
      name: "meshd says it waits for JetStream",
      timeoutMs: 20_000,
    });
    expect(exited, meshd.stderr().slice(-2000)).toBe(false);

    const hubConf = join(dir, "hub.conf");
    await writeFile(
      hubConf,
      `listen: "127.0.0.1:-1"\njetstream { store_dir: "${join(dir, "js")}", domain: hub }\nleafnodes { listen: "127.0.0.1:${leafPort}" }\n`,
    );
    const hub = await startConfServer(hubConf);
    cleanups.push(() => hub.stop());
    const client = await openClient(hub.url);
    cleanups.push(() => client.close());
    await waitFor(
      async () => {
        if (exited) return true;
        return (await client.api.listWorkers().catch(() => [])).some((w) => w.name === "waiter");
      },
      { name: "the waiting daemon starts and registers with the hub", timeoutMs: 30_000 },
    );
    expect(exited, meshd.stderr().slice(-2000)).toBe(false);
  }, 90_000);
});
