/**
 * A mesh over network-namespace hosts, set up the way users do it: `mesh hub init` and
 * `mesh hub start` on the hub host, `mesh invite <name>` there, `mesh join <line>` and
 * `mesh up` (as a TLS client, or `--leaf`) on each machine. Only the built CLI is used.
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, waitFor } from "../harness/index.js";
import type { Host, HostProcess, Outcome } from "./hosts.js";
import { MESH_BIN, REPO_ROOT, shebangNodeFlags } from "./mesh.js";

export const mesh = (host: Host, args: string[], input?: string): Promise<Outcome> =>
  host.run([process.execPath, MESH_BIN, ...args], input === undefined ? {} : { input });

export interface Hub {
  host: Host;
  dir: string;
  server: HostProcess;
}

export async function startHub(
  host: Host,
  ports: { port: number; leafPort: number } = { port: 4222, leafPort: 7422 },
): Promise<Hub> {
  const dir = join(await makeTempDir("hub-"), "hub");
  const init = await mesh(host, [
    "hub",
    "init",
    "--dir",
    dir,
    "--host",
    host.ip,
    "--port",
    String(ports.port),
    "--leaf-port",
    String(ports.leafPort),
    "--json",
  ]);
  if (init.code !== 0) throw new Error(`mesh hub init: ${init.stderr}`);
  const server = host.spawn([process.execPath, MESH_BIN, "hub", "start", "--dir", dir]);
  await waitFor(() => server.stderr().includes("Server is ready") || server.child.exitCode !== null, {
    name: "hub nats-server ready",
    timeoutMs: 20_000,
  });
  if (server.child.exitCode !== null) throw new Error(`mesh hub start exited:\n${server.stderr()}`);
  return { host, dir, server };
}

/** A 3-node cluster hub: `mesh hub init --cluster 3` on the first host, one node per host. */
export async function startClusterHub(nodes: Host[]): Promise<Hub & { servers: HostProcess[] }> {
  const dir = join(await makeTempDir("hub-"), "hub");
  const hosts = nodes.flatMap((n) => ["--host", n.ip]);
  const init = await mesh(nodes[0]!, [
    "hub",
    "init",
    "--dir",
    dir,
    "--cluster",
    String(nodes.length),
    ...hosts,
  ]);
  if (init.code !== 0) throw new Error(`mesh hub init --cluster: ${init.stderr}`);
  const servers = nodes.map((n, i) =>
    n.spawn([process.execPath, MESH_BIN, "hub", "start", "--dir", dir, "--node", String(i + 1)]),
  );
  // JetStream serves once the nodes have elected a metadata leader.
  await waitFor(
    () => {
      const dead = servers.find((s) => s.child.exitCode !== null);
      if (dead) throw new Error(`a hub node exited:\n${dead.stderr()}`);
      return servers.some((s) => /JetStream cluster new metadata leader/.test(s.stderr()));
    },
    { name: "hub cluster has a metadata leader", timeoutMs: 30_000 },
  );
  return { host: nodes[0]!, dir, server: servers[0]!, servers };
}

export async function invite(hub: Hub, name: string): Promise<string> {
  const r = await mesh(hub.host, ["invite", name, "--dir", hub.dir]);
  if (r.code !== 0) throw new Error(`mesh invite ${name}: ${r.stderr}`);
  return r.stdout.trim();
}

export async function inviteAndJoin(hub: Hub, host: Host): Promise<void> {
  const line = await invite(hub, host.name);
  const r = await mesh(host, ["join", line, "--state-dir", host.stateDir]);
  if (r.code !== 0) throw new Error(`mesh join on ${host.name}: exit ${r.code}: ${r.stderr}`);
}

export interface Machine {
  host: Host;
  up: HostProcess;
  workerId: string;
}

/** Fast timings, command runner only; `lease` per test. */
async function upConfig(lease: string): Promise<string> {
  const file = join(await makeTempDir("up-cfg-"), "meshd.yaml");
  await writeFile(
    file,
    [
      `lease: ${lease}`,
      "presenceInterval: 500ms",
      "retryDelay: 100ms",
      "shutdownGrace: 5s",
      "runners: [command]",
      "",
    ].join("\n"),
  );
  return file;
}

/** `mesh up` on a joined host (TLS client, or `--leaf`), labelled `host=<name>`. */
export async function meshUp(
  host: Host,
  o: { leaf?: boolean; lease?: string; extra?: string[] } = {},
): Promise<Machine> {
  const args = [
    "up",
    "--json",
    "--state-dir",
    host.stateDir,
    "--nats-port",
    "0",
    "-c",
    await upConfig(o.lease ?? "3s"),
    "--name",
    host.name,
    "--labels",
    `host=${host.name}`,
    "--log-level",
    "debug",
    ...(o.leaf ? ["--leaf"] : []),
    ...(o.extra ?? []),
  ];
  // `mesh up` runs the daemon in the CLI process: with the node flags of the installed bin.
  const up = host.spawn([process.execPath, ...shebangNodeFlags(MESH_BIN), MESH_BIN, ...args]);
  const info = await waitFor(
    () => {
      if (up.child.exitCode !== null) return { error: up.stderr() };
      const line = up.stdout().split("\n")[0];
      return up.stdout().includes("\n") && line ? (JSON.parse(line) as { workerId: string }) : undefined;
    },
    { name: `mesh up on ${host.name}`, timeoutMs: 40_000 },
  );
  if ("error" in info) throw new Error(`mesh up on ${host.name} exited:\n${info.error}`);
  return { host, up, workerId: info.workerId };
}

export interface WorkerRow {
  workerId: string;
  name: string;
  httpUrls: string[];
  reach: string | null;
}

export async function workersOn(host: Host): Promise<WorkerRow[]> {
  const r = await mesh(host, ["workers", "--json"]);
  if (r.code !== 0) throw new Error(`mesh workers on ${host.name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { workers: WorkerRow[] }).workers;
}

export type RawRecord = {
  id: string;
  state: string;
  revision?: number;
  attempts: Array<{ attempt: number; workerId: string; outcome?: string; reason?: string }>;
};

/** Raw records through the hub, read inside `host` with its joined credentials (plain nats.js). */
export async function rawRecords(host: Host, ids: string[]): Promise<Map<string, RawRecord>> {
  const joinDir = join(host.stateDir, "join");
  const url = (JSON.parse(readFileSync(join(joinDir, "hub.json"), "utf8")) as { urls: string[] }).urls[0]!;
  const r = await host.run([
    process.execPath,
    join(REPO_ROOT, "test/support/dump-kv.mjs"),
    url,
    join(joinDir, "ca.pem"),
    join(joinDir, "machine.nk"),
    ...ids,
  ]);
  if (r.code !== 0) throw new Error(`dump-kv: ${r.stderr}`);
  return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, RawRecord>));
}
