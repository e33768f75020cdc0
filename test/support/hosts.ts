/**
 * Hosts for tests, built from network namespaces: one namespace per host, each joined by a
 * veth pair to a bridge that lives in a namespace of its own (so nothing touches this
 * machine's own network), with an address from 198.19.0.0/16 (reserved for network tests).
 * Each host has its own state dirs. A host's processes run under `ip netns exec` with a
 * parent-death signal; unix sockets are files, so the test reaches daemons' sockets directly.
 * `cut()`/`heal()` take the host's link down and up; `dropInbound()` makes it refuse every
 * connection from outside (nftables), as a laptop behind NAT would.
 *
 * `makeHosts()` returns a reason instead where it cannot work: not root, no `ip`, or a kernel
 * that refuses namespaces. Everything is removed by `remove()` (also on a failed build).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { makeTempDir } from "../harness/index.js";

const IP = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].find((p) => existsSync(p));
const NFT = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].find((p) => existsSync(p));
const SETPRIV = "/usr/bin/setpriv";

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface Host {
  name: string;
  ns: string;
  /** The host's address on the bridge. */
  ip: string;
  /** A state dir of its own (MESH_STATE_DIR of its commands). */
  stateDir: string;
  /** Runs a command inside the host to its end. */
  run(argv: string[], opts?: { env?: NodeJS.ProcessEnv; input?: string }): Promise<Outcome>;
  /** Starts a long-running command inside the host. */
  spawn(argv: string[], opts?: { env?: NodeJS.ProcessEnv }): HostProcess;
  /** Takes the host's link down: every connection of it stops at once (a partition). */
  cut(): void;
  heal(): void;
  /** Drops every inbound connection (nftables); the host can still dial out. */
  dropInbound(): void;
}

export interface Hosts {
  hosts: Record<string, Host>;
  remove(): void;
}

const ip = (args: string[]) => execFileSync(IP!, args, { stdio: ["ignore", "ignore", "pipe"] });
const inNs = (ns: string, args: string[]) => ip(["netns", "exec", ns, ...args]);

/** Why hosts cannot be built here, or undefined when they can. */
export function hostsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "network-namespace hosts need root (ip netns)";
  if (!IP) return "network-namespace hosts need iproute2 (`ip`): apt-get install iproute2";
  if (!existsSync(SETPRIV)) return "network-namespace hosts need setpriv (util-linux)";
  const probe = `mesh-probe-${randomBytes(3).toString("hex")}`;
  try {
    ip(["netns", "add", probe]);
  } catch (err) {
    return `the kernel refuses network namespaces here (ip netns add: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()})`;
  } finally {
    try {
      ip(["netns", "del", probe]);
    } catch {
      // was never made
    }
  }
  return undefined;
}

/** Why dropInbound() cannot work here, or undefined. */
export const nftUnavailable = (): string | undefined =>
  NFT ? undefined : "the packet filter needs nftables (`nft`): apt-get install nftables";

function collect(p: ChildProcess): { out: () => string; err: () => string } {
  let out = "";
  let err = "";
  p.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
    if (out.length > 400_000) out = out.slice(-200_000);
  });
  p.stderr?.on("data", (b: Buffer) => {
    err += b.toString();
    if (err.length > 400_000) err = err.slice(-200_000);
  });
  return { out: () => out, err: () => err };
}

/** run/spawn of a host: argv under `prefix` (e.g. `ip netns exec <ns>`) with a parent-death signal. */
function processRunners(
  stateDir: string,
  prefix: string[],
  live: Set<ChildProcess>,
): Pick<Host, "run" | "spawn"> {
  const argvIn = (argv: string[]) => ["--pdeathsig", "KILL", "--", ...prefix, ...argv];
  const env = (extra?: NodeJS.ProcessEnv) => ({
    ...process.env,
    NO_COLOR: "1",
    MESH_STATE_DIR: stateDir,
    ...extra,
  });
  return {
    run: (argv, opts = {}) =>
      new Promise((resolve) => {
        const c = spawn(SETPRIV, argvIn(argv), { env: env(opts.env), stdio: ["pipe", "pipe", "pipe"] });
        live.add(c);
        const o = collect(c);
        // A command that exits without reading its stdin closes the pipe first (EPIPE): not an error.
        c.stdin?.on("error", () => undefined);
        c.stdin?.end(opts.input ?? "");
        c.once("close", (code, signal) => {
          live.delete(c);
          resolve({ code: code ?? (signal ? 128 : 1), stdout: o.out(), stderr: o.err() });
        });
      }),
    spawn: (argv, opts = {}) => {
      const c = spawn(SETPRIV, argvIn(argv), { env: env(opts.env), stdio: ["ignore", "pipe", "pipe"] });
      live.add(c);
      const o = collect(c);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        c.once("exit", (code, signal) => {
          live.delete(c);
          resolve({ code, signal });
        }),
      );
      return {
        child: c,
        stdout: o.out,
        stderr: o.err,
        exited,
        async stop(signal = "SIGTERM") {
          if (c.exitCode !== null || c.signalCode !== null) return;
          c.kill(signal);
          const t = setTimeout(() => c.kill("SIGKILL"), 20_000);
          await exited;
          clearTimeout(t);
        },
      };
    },
  };
}

/**
 * This machine as a "host" (loopback, no namespace, no root needed) for the same helpers:
 * its processes run here with their own state dir; it cannot be cut off.
 */
export async function localHost(name: string): Promise<Host & { remove(): void }> {
  const live = new Set<ChildProcess>();
  const stateDir = await makeTempDir(`local-${name}-`);
  const no = () => {
    throw new Error(`${name} is this machine: it cannot be cut off or filtered`);
  };
  return {
    ...processRunners(stateDir, [], live),
    name,
    ns: "",
    ip: "127.0.0.1",
    stateDir,
    cut: no,
    heal: no,
    dropInbound: no,
    remove: () => {
      for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    },
  };
}

export async function makeHosts(names: string[]): Promise<Hosts> {
  const id = randomBytes(3).toString("hex");
  const bridgeNs = `mesh-${id}-br`;
  const subnet = `198.19.${randomInt(0, 256)}`;
  const made: string[] = [];
  const live = new Set<ChildProcess>();
  const remove = () => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    // Deleting a namespace deletes the veth ends inside it (and so their peers).
    for (const ns of made.reverse()) {
      try {
        ip(["netns", "del", ns]);
      } catch {
        // gone already
      }
    }
  };
  try {
    ip(["netns", "add", bridgeNs]);
    made.push(bridgeNs);
    inNs(bridgeNs, ["ip", "link", "add", "br0", "type", "bridge"]);
    inNs(bridgeNs, ["ip", "link", "set", "br0", "up"]);
    const hosts: Record<string, Host> = {};
    let i = 0;
    for (const name of names) {
      i++;
      const ns = `mesh-${id}-${name}`;
      const hostIp = `${subnet}.${i + 1}`;
      const [inner, outer] = [`mh${id}h${i}`, `mh${id}b${i}`];
      ip(["netns", "add", ns]);
      made.push(ns);
      ip(["link", "add", inner, "type", "veth", "peer", "name", outer]);
      ip(["link", "set", inner, "netns", ns]);
      ip(["link", "set", outer, "netns", bridgeNs]);
      inNs(bridgeNs, ["ip", "link", "set", outer, "master", "br0"]);
      inNs(bridgeNs, ["ip", "link", "set", outer, "up"]);
      inNs(ns, ["ip", "link", "set", inner, "name", "eth0"]);
      inNs(ns, ["ip", "addr", "add", `${hostIp}/24`, "dev", "eth0"]);
      inNs(ns, ["ip", "link", "set", "eth0", "up"]);
      inNs(ns, ["ip", "link", "set", "lo", "up"]);
      const stateDir = await makeTempDir(`host-${name}-`);
      const prefix = [IP!, "netns", "exec", ns];
      hosts[name] = {
        ...processRunners(stateDir, prefix, live),
        name,
        ns,
        ip: hostIp,
        stateDir,
        cut: () => inNs(ns, ["ip", "link", "set", "eth0", "down"]),
        heal: () => inNs(ns, ["ip", "link", "set", "eth0", "up"]),
        dropInbound: () => {
          if (!NFT) throw new Error(nftUnavailable());
          execFileSync(IP!, ["netns", "exec", ns, NFT, "-f", "-"], {
            input: [
              "table inet meshtest {",
              "  chain input {",
              "    type filter hook input priority 0; policy drop;",
              "    ct state established,related accept",
              '    iif "lo" accept',
              "  }",
              "}",
              "",
            ].join("\n"),
            stdio: ["pipe", "ignore", "pipe"],
          });
        },
      };
    }
    return { hosts, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
