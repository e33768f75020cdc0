/**
 * A 3-node cluster hub across hosts (`mesh hub init --cluster 3`, one `mesh hub start --node n`
 * per host, routes with mutual TLS): a machine joins with one string naming all three nodes,
 * its streams get 3 replicas, and it keeps working when the node it talked to stops.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDirs } from "./harness/index.js";
import { REPO_ROOT } from "./support/mesh.js";
import { type HostProcess, type Hosts, hostsUnavailable, makeHosts } from "./support/hosts.js";
import { type Hub, inviteAndJoin, type Machine, mesh, meshUp, startClusterHub } from "./support/hub-hosts.js";

const unavailable = hostsUnavailable();
if (unavailable) console.warn(`hosts-cluster: skipped: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("a 3-node cluster hub", () => {
  let net: Hosts;
  let hub: Hub & { servers: HostProcess[] };
  let w: Machine;
  let leaf: Machine;

  beforeAll(async () => {
    net = await makeHosts(["n1", "n2", "n3", "w", "l"]);
    hub = await startClusterHub([net.hosts.n1!, net.hosts.n2!, net.hosts.n3!]);
    await inviteAndJoin(hub, net.hosts.w!);
    await inviteAndJoin(hub, net.hosts.l!);
    w = await meshUp(net.hosts.w!);
    leaf = await meshUp(net.hosts.l!, { leaf: true });
  }, 120_000);

  afterAll(async () => {
    await Promise.allSettled([w, leaf].filter(Boolean).map((m) => m.up.stop()));
    await Promise.allSettled((hub?.servers ?? []).map((s) => s.stop()));
    net?.remove();
    await removeTempDirs();
  });

  async function runOn(from: Machine, to: Machine, id: string): Promise<void> {
    const spec = join(await makeTempDir("cluster-spec-"), "t.yaml");
    await writeFile(
      spec,
      `id: ${id}\nrunner: command\nprompt: p\nlabels: { host: ${to.host.name} }\ncommand: [${JSON.stringify(process.execPath)}, -e, "1"]\n`,
    );
    const r = await mesh(from.host, ["submit", spec, "--wait", "--json", "--unschedulable-timeout", "30s"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  }

  it("serves machines joined with one string, on 3 replicas, and survives the loss of a node", async () => {
    const joined = JSON.parse(
      (await net.hosts.w!.run(["cat", join(net.hosts.w!.stateDir, "join/hub.json")])).stdout,
    ) as { urls: string[]; replicas: number };
    expect(joined.urls).toEqual(["n1", "n2", "n3"].map((n) => `tls://${net.hosts[n]!.ip}:4222`));
    expect(joined.replicas).toBe(3);
    await runOn(w, leaf, "cluster-1");
    await runOn(leaf, w, "cluster-2");
    const jd = join(net.hosts.w!.stateDir, "join");
    const replicas = await net.hosts.w!.run([
      process.execPath,
      join(REPO_ROOT, "test/support/dump-kv.mjs"),
      joined.urls[1]!,
      join(jd, "ca.pem"),
      join(jd, "machine.nk"),
      "--replicas",
    ]);
    const streams = JSON.parse(replicas.stdout) as Record<string, number>;
    expect(Object.keys(streams)).toContain("KV_mesh-tasks");
    expect(new Set(Object.values(streams))).toEqual(new Set([3]));
    // Node 1 goes away (the one a client dials first): R3 streams keep a quorum on 2 and 3.
    await hub.servers[0]!.stop();
    await runOn(w, leaf, "cluster-3");
    await runOn(leaf, w, "cluster-4");
  });
});
