/**
 * A nats-server child with JetStream for `mesh up`: loopback only, data under the state dir,
 * and locked: only a holder of the daemon nkey seed (made on first start, 0600 in the 0700
 * state dir) can connect. The server gets its config from a 0600 file, never from argv. It is
 * started in its own process group (a terminal's Ctrl-C reaches `mesh up`, which stops the
 * daemon first and then the server) with a parent-death signal, so it never outlives `mesh up`.
 */
import { createWriteStream, existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { createUser, fromSeed } from "@nats-io/nkeys";
import { parentDeathSignalAvailable, spawnChild } from "../lib/index.js";
import { DAEMON_PERMISSIONS, LOCAL_NKEY_FILE, renderPermissions } from "../daemon/index.js";
import { CliError, EXIT } from "./errors.js";

export const NATS_INSTALL_HINT =
  "install it: `sudo apt-get install nats-server` (Debian/Ubuntu; the binary is /usr/sbin/nats-server), " +
  "`brew install nats-server` (macOS), or see https://docs.nats.io; or join an existing NATS with --nats <url>";

export const LOCAL_NATS_CONFIG_FILE = "nats-server.conf";

export function findNatsServer(): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/opt/homebrew/bin",
  ];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, "nats-server");
    if (existsSync(p)) return p;
  }
  return undefined;
}

export interface LocalNats {
  url: string;
  port: number;
  pid: number | undefined;
  logFile: string;
  /** The daemon user's nkey seed file (`meshd --nats-nkey`, `nats --nkey`). */
  nkeyFile: string;
  /** Settles when the server process has exited, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

/** The daemon user's seed: made once (0600), reused on every start. */
async function daemonSeed(stateDir: string): Promise<{ file: string; publicKey: string }> {
  const file = join(stateDir, LOCAL_NKEY_FILE);
  try {
    await writeFile(file, `${new TextDecoder().decode(createUser().getSeed())}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    await chmod(file, 0o600);
  }
  const seed = (await readFile(file, "utf8")).trim();
  try {
    const kp = fromSeed(new TextEncoder().encode(seed));
    const publicKey = kp.getPublicKey();
    if (!publicKey.startsWith("U")) throw new Error("not a user seed");
    return { file, publicKey };
  } catch (err) {
    throw new CliError(
      EXIT.OTHER,
      `${file} does not hold an nkey user seed (${(err as Error).message}); delete it and start again to make a new one`,
      "INVALID_ARGUMENT",
      { field: LOCAL_NKEY_FILE },
    );
  }
}

/**
 * A leaf-node remote: the local server dials the hub (TLS, the hub's CA) as the machine's leaf
 * user. Such a server runs no JetStream of its own: the daemon uses the hub's streams through
 * the hub's domain (`$JS.<domain>.API`), and a daemon without that domain gets "JetStream not
 * enabled" instead of streams on this machine.
 */
export interface LeafRemote {
  urls: string[];
  user: string;
  password: string;
  caFile: string;
}

function leafUrl(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString().replace(/\/$/, "");
}

function renderConfig(o: {
  host: string;
  port: number;
  storeDir: string;
  publicKey: string;
  leaf?: LeafRemote | undefined;
}): string {
  const q = (s: string) => JSON.stringify(s);
  const leaf = o.leaf;
  return [
    "# Written by `mesh up` on every start; the daemon's nkey seed is beside it (nats-daemon.nk).",
    `listen: ${q(`${o.host}:${o.port === 0 ? -1 : o.port}`)}`,
    `server_name: ${q(leaf ? `agent-mesh-${leaf.user}` : "agent-mesh-local")}`,
    ...(leaf
      ? [
          "# A leaf node of the hub: it dials out only (TLS); the leaf password is why this file is 0600.",
          `leafnodes { remotes: [ { urls: [${leaf.urls.map((u) => q(leafUrl(u, leaf.user, leaf.password))).join(", ")}], tls: { ca_file: ${q(leaf.caFile)} } } ] }`,
        ]
      : [`jetstream { store_dir: ${q(o.storeDir)} }`]),
    "authorization {",
    `  users: [ { nkey: ${q(o.publicKey)}, permissions: ${renderPermissions(DAEMON_PERMISSIONS)} } ]`,
    "}",
    "",
  ].join("\n");
}

/** How long `mesh up --leaf` waits for the hub to accept the leaf connection at start. */
const LEAF_CONNECT_MS = 20_000;

export async function startLocalNats(opts: {
  stateDir: string;
  host: string;
  port: number;
  bin?: string;
  /** Run as a leaf node of a hub (and wait for the leaf connection before it counts as ready). */
  leaf?: LeafRemote;
}): Promise<LocalNats> {
  const pinned = opts.bin ?? process.env.MESH_NATS_SERVER;
  const bin = pinned ? (existsSync(pinned) ? pinned : undefined) : findNatsServer();
  if (!bin) {
    const where = pinned ? `${pinned} (MESH_NATS_SERVER) does not exist` : "nats-server not found on PATH";
    throw new CliError(EXIT.OTHER, `${where}; ${NATS_INSTALL_HINT}`, "MISSING_DEPENDENCY");
  }
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  await chmod(opts.stateDir, 0o700);
  const storeDir = join(opts.stateDir, "nats");
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const { file: nkeyFile, publicKey } = await daemonSeed(opts.stateDir);
  const configFile = join(opts.stateDir, LOCAL_NATS_CONFIG_FILE);
  await writeFile(
    configFile,
    renderConfig({ host: opts.host, port: opts.port, storeDir, publicKey, leaf: opts.leaf }),
    {
      mode: 0o600,
    },
  );
  await chmod(configFile, 0o600);
  const logFile = join(opts.stateDir, "nats-server.log");
  const args = ["-c", configFile];
  // setpriv sets PR_SET_PDEATHSIG and then execs nats-server (same pid): the kernel stops the
  // server when `mesh up` dies, however it dies (SIGTERM: the server flushes and exits cleanly).
  // Its own process group only where the parent-death signal covers a `kill -9` of `mesh up`.
  // Every path out of this process takes the server with it, even one that skips stop().
  const child = spawnChild([bin, ...args], {
    stdout: "ignore",
    parentDeath: "signal",
    parentDeathSignal: "SIGTERM",
    group: parentDeathSignalAvailable(),
    reapGroup: false,
    killOnExit: true,
    killGraceMs: 10_000,
  });
  const log = createWriteStream(logFile, { flags: "a", mode: 0o600 });
  let tail = "";
  const exited = child.exited.then(({ exitCode, signal }) => ({ code: exitCode, signal }));
  let port = opts.port;
  let ready = false;
  let serverReady = false;
  let leafUp = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            opts.leaf && serverReady
              ? new CliError(
                  EXIT.UNREACHABLE,
                  `the hub did not accept the leaf connection from ${opts.leaf.urls.join(", ")} in ${LEAF_CONNECT_MS / 1000} s (unreachable, or the machine was revoked?); see ${logFile}`,
                  "UNAVAILABLE",
                )
              : new CliError(
                  EXIT.OTHER,
                  `nats-server did not become ready in 20 s; see ${logFile}`,
                  "TIMEOUT",
                ),
          ),
        opts.leaf ? LEAF_CONNECT_MS : 20_000,
      );
      child.stderr?.on("data", (b: Buffer) => {
        log.write(b);
        if (ready) return;
        tail = (tail + b.toString()).slice(-4000);
        const listening = /Listening for client connections on [^\s]*:(\d+)/.exec(tail);
        if (listening) port = Number(listening[1]);
        if (tail.includes("Server is ready")) serverReady = true;
        if (tail.includes("Leafnode connection created")) leafUp = true;
        if (serverReady && (!opts.leaf || leafUp)) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(({ code }) => {
        clearTimeout(timer);
        const inUse = /address already in use/.test(tail);
        reject(
          new CliError(
            EXIT.OTHER,
            inUse
              ? `nats-server could not listen on ${opts.host}:${opts.port}: the port is in use; pick another with --nats-port (0: any free port) or join it with --nats nats://${opts.host}:${opts.port}`
              : `nats-server exited (code ${code}) before it was ready; see ${logFile}`,
            "UNAVAILABLE",
          ),
        );
      });
    });
  } catch (err) {
    child.kill();
    await exited;
    log.end();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `nats://${opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host}:${port}`,
    port,
    pid: child.pid,
    logFile,
    nkeyFile,
    exited,
    stop() {
      stopping ??= (async () => {
        await child.stop();
        log.end();
      })();
      return stopping;
    },
  };
}
