/**
 * The hub's life: `mesh hub init` (CA, server certificate, admin key, configs), `mesh invite`
 * (a machine's user, its join string, a reload of the running nodes), `mesh hub revoke`, and
 * `mesh hub start` (nats-server in the foreground).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { spawnChild } from "../../lib/index.js";
import { CliError, EXIT } from "../errors.js";
import { findNatsServer, NATS_INSTALL_HINT } from "../local-nats.js";
import { makeHubCerts, pemSha256 } from "./certs.js";
import { nodeConfigFile, nodePidFile, renderNodeConfig, renderUsers } from "./hub-config.js";
import {
  clientUrls,
  HUB_FILE,
  type HubState,
  leafUrls,
  readHubState,
  USERS_FILE,
  writeHubState,
  writeSecret,
} from "./hub-state.js";
import { encodeJoinString } from "./join-string.js";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export interface InitOptions {
  dir: string;
  cluster: number;
  hosts: string[];
  domain: string;
  port: number;
  leafPort: number;
  routePort: number;
  force: boolean;
}

/** The machine's names others may dial: its non-loopback IPv4 addresses, then its host name. */
export function defaultHubHosts(): string[] {
  const v4 = Object.values(networkInterfaces())
    .flatMap((l) => l ?? [])
    .filter((a) => a.family === "IPv4" && !a.internal)
    .map((a) => a.address);
  return [...new Set([...v4, hostname()])];
}

export async function hubInit(o: InitOptions): Promise<HubState> {
  if (![1, 3, 5].includes(o.cluster)) {
    throw new CliError(EXIT.USAGE, `--cluster: ${o.cluster} nodes; use 1, 3 or 5`, "INVALID_ARGUMENT", {
      field: "--cluster",
    });
  }
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(o.domain)) {
    throw new CliError(
      EXIT.USAGE,
      `--domain: "${o.domain}" is not 1-32 of A-Z a-z 0-9 _ -`,
      "INVALID_ARGUMENT",
      {
        field: "--domain",
      },
    );
  }
  const hosts = o.hosts.length > 0 ? o.hosts : o.cluster === 1 ? defaultHubHosts() : [];
  for (const h of hosts) {
    if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(h)) {
      throw new CliError(EXIT.USAGE, `--host: "${h}" is not a host name or IP address`, "INVALID_ARGUMENT", {
        field: "--host",
      });
    }
  }
  if (o.cluster > 1 && hosts.length !== o.cluster) {
    throw new CliError(
      EXIT.USAGE,
      `--host: a ${o.cluster}-node cluster needs one --host per node (got ${hosts.length}), in node order: --host nats-1 --host nats-2 ...`,
      "INVALID_ARGUMENT",
      { field: "--host" },
    );
  }
  if (existsSync(join(o.dir, HUB_FILE)) && !o.force) {
    throw new CliError(
      EXIT.USAGE,
      `${o.dir} holds a hub already (${HUB_FILE}); use it, pick another --dir, or --force to make a new one (every machine must join again)`,
      "ALREADY_EXISTS",
      { field: "--dir" },
    );
  }
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  await chmod(o.dir, 0o700);
  const certs = await makeHubCerts(o.dir, hosts);
  const admin = createUser();
  await writeSecret(join(o.dir, "admin.nk"), `${new TextDecoder().decode(admin.getSeed())}\n`);
  const state: HubState = {
    v: 1,
    domain: o.domain,
    hosts,
    nodes: o.cluster,
    port: o.port,
    leafPort: o.leafPort,
    routePort: o.routePort,
    routePassword: randomBytes(24).toString("base64url"),
    adminNkey: admin.getPublicKey(),
    caSha256: await pemSha256(certs.caFile),
    machines: [],
    revoked: [],
  };
  await writeHubState(o.dir, state);
  await writeConfigs(o.dir, state);
  return state;
}

async function writeConfigs(dir: string, s: HubState): Promise<void> {
  await mkdir(join(dir, "data"), { recursive: true, mode: 0o700 });
  for (let n = 1; n <= s.nodes; n++) await writeSecret(nodeConfigFile(dir, n), renderNodeConfig(dir, s, n));
  await writeSecret(join(dir, USERS_FILE), renderUsers(s));
}

/** Asks every node running on this machine to re-read its config; returns the nodes reloaded. */
function reloadNodes(dir: string, s: HubState): number[] {
  const done: number[] = [];
  for (let n = 1; n <= s.nodes; n++) {
    const f = nodePidFile(dir, n);
    if (!existsSync(f)) continue;
    const pid = Number(readFileSync(f, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(pid, "SIGHUP");
      done.push(n);
    } catch {
      // not running (a stale pid file)
    }
  }
  return done;
}

export interface InviteResult {
  joinString: string;
  reloaded: number[];
  nodes: number;
}

export async function hubInvite(dir: string, name: string): Promise<InviteResult> {
  if (!NAME_RE.test(name)) {
    throw new CliError(
      EXIT.USAGE,
      `name: "${name}" is not 1-64 of A-Z a-z 0-9 _ - (a machine name)`,
      "INVALID_ARGUMENT",
      {
        field: "name",
      },
    );
  }
  const s = readHubState(dir);
  if (s.machines.some((m) => m.name === name)) {
    throw new CliError(
      EXIT.USAGE,
      `${name} is invited already: \`mesh hub revoke ${name}\` first to give it new credentials`,
      "ALREADY_EXISTS",
      { field: "name" },
    );
  }
  const kp = createUser();
  const leafPassword = randomBytes(24).toString("base64url");
  const leafUser = `leaf-${name}`;
  s.machines.push({
    name,
    nkey: kp.getPublicKey(),
    leafUser,
    leafPassword,
    invitedAt: new Date().toISOString(),
  });
  await writeHubState(dir, s);
  await writeSecret(join(dir, USERS_FILE), renderUsers(s));
  const joinString = encodeJoinString({
    name,
    urls: clientUrls(s),
    leafUrls: leafUrls(s),
    domain: s.domain,
    ca: s.caSha256,
    nkey: new TextDecoder().decode(kp.getSeed()),
    leafUser,
    leafPassword,
    replicas: s.nodes >= 3 ? 3 : 1,
  });
  return { joinString, reloaded: reloadNodes(dir, s), nodes: s.nodes };
}

export async function hubRevoke(dir: string, name: string): Promise<{ reloaded: number[]; nodes: number }> {
  const s = readHubState(dir);
  const m = s.machines.find((x) => x.name === name);
  if (!m) {
    throw new CliError(
      EXIT.NOT_FOUND,
      `no machine ${name} at this hub (\`mesh hub list\` shows them)`,
      "NOT_FOUND",
      {
        field: "name",
      },
    );
  }
  s.machines = s.machines.filter((x) => x !== m);
  s.revoked.push({ name, nkey: m.nkey, at: new Date().toISOString() });
  await writeHubState(dir, s);
  await writeSecret(join(dir, USERS_FILE), renderUsers(s));
  // nats-server closes the connections of users a reload removed.
  return { reloaded: reloadNodes(dir, s), nodes: s.nodes };
}

/** Runs one node's nats-server in the foreground until it exits; signals are passed on. */
export async function hubStart(dir: string, node: number): Promise<number> {
  const s = readHubState(dir);
  if (!Number.isInteger(node) || node < 1 || node > s.nodes) {
    throw new CliError(EXIT.USAGE, `--node: ${node}; this hub has nodes 1-${s.nodes}`, "INVALID_ARGUMENT", {
      field: "--node",
    });
  }
  // Re-rendered on every start: a config always matches hub.json (and this version's format).
  await writeConfigs(dir, s);
  const bin = process.env.MESH_NATS_SERVER ?? findNatsServer();
  if (!bin || !existsSync(bin)) {
    throw new CliError(EXIT.OTHER, `nats-server not found; ${NATS_INSTALL_HINT}`, "MISSING_DEPENDENCY");
  }
  // Through lib/child like mesh up's server: it stays in this process group (a terminal's Ctrl-C
  // reaches it as before), gets SIGTERM when this process dies however it dies, and is killed
  // on every path out of this process.
  const child = spawnChild([bin, "-c", nodeConfigFile(dir, node)], {
    stdout: "inherit",
    stderr: "inherit",
    group: false,
    parentDeath: "signal",
    parentDeathSignal: "SIGTERM",
    killOnExit: true,
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => child.signal(sig));
  const { exitCode, signal, spawnError } = await child.exited;
  if (spawnError)
    throw new CliError(EXIT.OTHER, `cannot start nats-server: ${spawnError}`, "MISSING_DEPENDENCY");
  return exitCode ?? (signal === "SIGINT" || signal === "SIGTERM" ? 0 : 1);
}

export async function writeReadme(dir: string, s: HubState): Promise<void> {
  await writeFile(
    join(dir, "README.txt"),
    [
      "agent-mesh hub (made by `mesh hub init`). Keep this directory on the hub machine: it holds",
      "the CA key, the server key, the leaf and route passwords and the admin seed (admin.nk).",
      "",
      ...Array.from(
        { length: s.nodes },
        (_, i) => `node ${i + 1}: mesh hub start --dir ${dir} --node ${i + 1}`,
      ),
      "invite a machine: mesh invite <name> --dir <this dir>   (prints its one-line join string)",
      "revoke it:        mesh hub revoke <name> --dir <this dir>",
      s.nodes > 1
        ? "cluster: copy this directory (without ca.key) to every node's machine; after an invite or revoke, copy users.conf to the other nodes and reload them (nats-server --signal reload)."
        : "",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}
