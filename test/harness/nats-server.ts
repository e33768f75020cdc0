// Launches real nats-server processes for integration tests (the nats.js `nst` way): random
// loopback port, temp store dir, readiness from the log, restart on the same port, clusters.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { delimiter, join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { StartedTestContainer } from "testcontainers";
import { type Child, spawnChild } from "../../lib/child/index.js";
import { resolveExecutable } from "../../daemon/runner/which.js";
import { makeTempDir, removeTempDir } from "./tmp.js";
import { Deferred, waitFor, withTimeout } from "./wait.js";

const LOOPBACK = "127.0.0.1";
const READY_LINE = "Server is ready";
const LOG_LINES_KEPT = 200;
const LOG_LINES_IN_ERRORS = 25;
const STOP_GRACE_MS = 10_000;
const PORT_ATTEMPTS = 5;
const CONTAINER_IMAGE = "nats:2.10";

/** Env overrides. Set MESH_TEST_NATS_BIN to a path to pin the binary ("/nonexistent" forces "missing"). */
export const NATS_BIN_ENV = "MESH_TEST_NATS_BIN";
/** Set to "0" to never fall back to a container (makes the missing-binary error deterministic). */
export const NATS_CONTAINER_ENV = "MESH_TEST_NATS_CONTAINER";
/** Set to "1" to echo every server log line to this process's stderr while debugging. */
export const NATS_LOG_ENV = "MESH_TEST_NATS_LOG";

const INSTALL_HINT =
  "install nats-server (`sudo apt-get install nats-server` on Debian/Ubuntu, " +
  "`brew install nats-server` on macOS) or start Docker";

export interface NatsServerOptions {
  jetstream?: boolean;
  port?: number;
  storeDir?: string;
  cluster?: { name: string; port: number; routes: string[] };
  serverName?: string;
  jetstreamDomain?: string;
  extraConfig?: string;
  readyTimeoutMs?: number;
}

export class NatsServerNotFoundError extends Error {
  override readonly name = "NatsServerNotFoundError";
  readonly code = "NATS_SERVER_NOT_FOUND";
  constructor(
    reason = "nats-server binary not found ($MESH_TEST_NATS_BIN, PATH, /usr/sbin, /usr/local/bin) and no container runtime is reachable",
  ) {
    super(`${reason}: ${INSTALL_HINT}`);
  }
}

export class NatsServerStartError extends Error {
  override readonly name = "NatsServerStartError";
  readonly code = "NATS_SERVER_START_FAILED";
  constructor(
    message: string,
    readonly logs: readonly string[],
    /** True when the port was taken between probing and binding: retry on a fresh port. */
    readonly addressInUse: boolean,
    options?: ErrorOptions,
  ) {
    super(
      `${message}\n--- last nats-server log lines ---\n${logs.slice(-LOG_LINES_IN_ERRORS).join("\n")}`,
      options,
    );
  }
}

// lib/child starts each server: `parentDeath: "signal"` (util-linux setpriv sets
// PR_SET_PDEATHSIG, then execs nats-server, same pid) makes the kernel kill the server whenever
// this process dies, however it dies (vitest stops its fork workers with SIGTERM, so 'exit' hooks
// never run there); `killOnExit` is the best-effort reaper where they do.

/** $MESH_TEST_NATS_BIN if set (even when unusable, so tests can force "missing"), else PATH, /usr/sbin, /usr/local/bin. */
export function findNatsServerBinary(): string | undefined {
  const forced = process.env[NATS_BIN_ENV];
  if (forced) return resolveExecutable(resolve(forced), "/") ? forced : undefined;
  // /usr/sbin is where Debian puts it and it is not on a non-root PATH.
  const dirs = [process.env.PATH ?? "", "/usr/sbin", "/usr/local/bin", "/opt/homebrew/bin"];
  return resolveExecutable("nats-server", "/", dirs.join(delimiter));
}

/** Whether a Docker-compatible engine answers (testcontainers fails within ms when none exists). */
export async function containerRuntimeAvailable(): Promise<boolean> {
  if (process.env[NATS_CONTAINER_ENV] === "0") return false;
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/** A port that was free a moment ago. Callers must tolerate losing the race (EADDRINUSE). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/** Several distinct free ports: all are held open at once so none is handed out twice. */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (srv) =>
          new Promise<number>((resolve, reject) => {
            srv.once("error", reject);
            srv.listen(0, LOOPBACK, () => {
              const addr = srv.address();
              if (typeof addr === "object" && addr) resolve(addr.port);
              else reject(new Error("no port"));
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, LOOPBACK, () => srv.close(() => resolve(true)));
  });
}

interface ProcessInit {
  kind: "process";
  bin: string;
  port: number;
  storeDir: string;
  workDir: string;
  ownedDirs: string[];
  opts: NatsServerOptions;
}

interface ContainerInit {
  kind: "container";
  port: number;
  host: string;
  container: StartedTestContainer;
}

export class NatsServer {
  readonly port: number;
  readonly url: string;
  /** For container servers this is the path inside the container. */
  readonly storeDir: string;
  /** The generated config file ("" for container servers). */
  readonly configFile: string;
  readonly serverName: string;
  readonly clusterPort: number | undefined;

  readonly #init: ProcessInit | ContainerInit;
  #child: Child | undefined;
  #closed: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;
  #containerRunning = false;
  #cleaned = false;
  #log: string[] = [];

  private constructor(init: ProcessInit | ContainerInit) {
    this.#init = init;
    this.port = init.port;
    if (init.kind === "process") {
      this.url = `nats://${LOOPBACK}:${init.port}`;
      this.storeDir = init.storeDir;
      this.configFile = join(init.workDir, "nats.conf");
      this.serverName = init.opts.serverName ?? `mesh-test-${init.port}`;
      this.clusterPort = init.opts.cluster?.port;
    } else {
      this.url = `nats://${init.host}:${init.port}`;
      this.storeDir = "/data";
      this.configFile = "";
      this.serverName = `container-${init.container.getId().slice(0, 12)}`;
      this.clusterPort = undefined;
      this.#containerRunning = true;
    }
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const bin = findNatsServerBinary();
    if (!bin) {
      if (await containerRuntimeAvailable()) return NatsServer.#startContainer(opts);
      throw new NatsServerNotFoundError();
    }
    // Only a port we picked ourselves can be re-picked when another process grabs it first.
    const canRetryPort = opts.port === undefined && opts.cluster === undefined;
    for (let attempt = 1; ; attempt++) {
      const workDir = await makeTempDir("mesh-nats-");
      const storeDir = opts.storeDir ?? join(workDir, "store");
      const port = opts.port ?? (await freePort());
      const server = new NatsServer({
        kind: "process",
        bin,
        port,
        storeDir,
        workDir,
        ownedDirs: [workDir],
        opts,
      });
      try {
        await writeFile(server.configFile, server.#renderConfig());
        await server.#spawn();
        return server;
      } catch (err) {
        await server.cleanup();
        const retry = canRetryPort && err instanceof NatsServerStartError && err.addressInUse;
        if (!retry || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  }

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    if (this.#init.kind === "container") return this.#containerRunning;
    return this.#child?.running ?? false;
  }

  /** The most recent server log lines (stdout and stderr), oldest first. */
  get logs(): readonly string[] {
    return this.#log;
  }

  /** SIGTERM, then SIGKILL if the server has not exited within the grace period. Keeps storeDir. */
  stop(): Promise<void> {
    if (this.#init.kind === "container") return this.#stopContainer(STOP_GRACE_MS);
    const child = this.#child;
    if (!child || !this.running) return this.#closed;
    // Memoized so concurrent stop() calls share one shutdown.
    this.#stopping ??= (async () => {
      await child.stop(STOP_GRACE_MS);
      await this.#closed;
    })().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  /** SIGKILL by pid (a crash: no JetStream flush) and wait for the process to be gone. */
  async kill(): Promise<void> {
    if (this.#init.kind === "container") return this.#stopContainer(0);
    this.#child?.kill();
    await this.#closed;
  }

  /** Stops if running, then starts again on the same port, config and store dir. */
  async restart(): Promise<void> {
    const init = this.#init;
    if (init.kind === "container") throw new Error("NatsServer.restart() is unsupported on containers");
    if (this.#cleaned) throw new Error("NatsServer.restart() after cleanup()");
    await this.stop();
    // The old socket can linger for a moment after exit; binding too early would make
    // the server die with "address already in use".
    for (const port of [this.port, this.clusterPort]) {
      if (port === undefined) continue;
      await waitFor(() => portIsFree(port), { name: `port ${port} free for restart`, timeoutMs: 30_000 });
    }
    await this.#spawn();
  }

  /** Stops the server and removes the temp dirs it created (not a caller-provided storeDir). */
  async cleanup(): Promise<void> {
    this.#cleaned = true;
    const init = this.#init;
    if (init.kind === "container") return this.#stopContainer(STOP_GRACE_MS);
    try {
      await this.stop();
    } finally {
      const dirs = init.ownedDirs.splice(0);
      await Promise.all(dirs.map((dir) => removeTempDir(dir)));
    }
  }

  #renderConfig(): string {
    const init = this.#init;
    if (init.kind !== "process") throw new Error("no config for containers");
    const { opts } = init;
    const q = (s: string) => JSON.stringify(s);
    // No http/monitoring port: one fewer port to collide on; tests use the client API.
    const lines = [`listen: ${q(`${LOOPBACK}:${this.port}`)}`, `server_name: ${q(this.serverName)}`];
    if (opts.jetstream ?? true) {
      lines.push("jetstream {", `  store_dir: ${q(this.storeDir)}`);
      if (opts.jetstreamDomain) lines.push(`  domain: ${q(opts.jetstreamDomain)}`);
      lines.push("}");
    }
    if (opts.cluster) {
      lines.push(
        "cluster {",
        `  name: ${q(opts.cluster.name)}`,
        `  listen: ${q(`${LOOPBACK}:${opts.cluster.port}`)}`,
        `  routes: [${opts.cluster.routes.map(q).join(", ")}]`,
        "}",
      );
    }
    if (opts.extraConfig) lines.push(opts.extraConfig);
    return `${lines.join("\n")}\n`;
  }

  async #spawn(): Promise<void> {
    const init = this.#init;
    if (init.kind !== "process") throw new Error("not a process server");
    this.#log = [];
    const child = spawnChild([init.bin, "-c", this.configFile], {
      parentDeath: "signal",
      group: false,
      killOnExit: true,
    });
    this.#child = child;

    const ready = new Deferred<void>();
    const echo = process.env[NATS_LOG_ENV] === "1";
    // Both pipes are drained for the server's whole life, or it would block on a full pipe.
    const output = (async () => {
      for await (const { line } of child.lines()) {
        this.#log.push(line);
        if (this.#log.length > LOG_LINES_KEPT) this.#log.shift();
        if (echo) process.stderr.write(`[nats ${this.port}] ${line}\n`);
        if (line.includes(READY_LINE)) ready.resolve();
      }
    })();

    // After the output has ended too, so the final log lines are in before we report an early exit.
    this.#closed = (async () => {
      const exit = await child.exited;
      await output;
      const why = exit.spawnError
        ? `spawn error: ${exit.spawnError}`
        : exit.signal
          ? `signal ${exit.signal}`
          : `exit code ${exit.exitCode}`;
      const inUse = this.#log.some((l) => l.includes("address already in use"));
      ready.reject(
        new NatsServerStartError(
          `nats-server ${this.url} exited before ready (${why})`,
          [...this.#log],
          inUse,
        ),
      );
    })();

    const timeoutMs = init.opts.readyTimeoutMs ?? 15_000;
    try {
      await withTimeout(ready.promise, timeoutMs, `nats-server ${this.url} ready`);
    } catch (err) {
      if (err instanceof NatsServerStartError) throw err;
      child.kill();
      await this.#closed;
      throw new NatsServerStartError(
        `nats-server ${this.url} not ready within ${timeoutMs}ms`,
        [...this.#log],
        false,
        {
          cause: err,
        },
      );
    }
  }

  static async #startContainer(opts: NatsServerOptions): Promise<NatsServer> {
    if (opts.cluster || opts.storeDir || opts.extraConfig || opts.jetstreamDomain) {
      throw new Error(
        "NatsServer options cluster/storeDir/extraConfig/jetstreamDomain are unsupported on containers",
      );
    }
    // GenericContainer rather than @testcontainers/nats: NatsContainer always adds a user and
    // password, which every plain `connect({ servers: url })` in the tests would then lack.
    const { GenericContainer, Wait } = await import("testcontainers");
    const args = opts.jetstream === false ? [] : ["--jetstream", "--store_dir", "/data"];
    if (opts.serverName) args.push("--server_name", opts.serverName);
    const container = await new GenericContainer(CONTAINER_IMAGE)
      .withCommand(args)
      .withExposedPorts(opts.port === undefined ? 4222 : { container: 4222, host: opts.port })
      .withWaitStrategy(Wait.forLogMessage(READY_LINE))
      .withStartupTimeout(opts.readyTimeoutMs ?? 120_000)
      .start();
    const host = container.getHost();
    return new NatsServer({ kind: "container", port: container.getMappedPort(4222), host, container });
  }

  async #stopContainer(timeoutMs: number): Promise<void> {
    const init = this.#init;
    if (init.kind !== "container" || !this.#containerRunning) return;
    this.#containerRunning = false;
    await init.container.stop({ timeout: timeoutMs });
  }
}

export interface NatsClusterOptions {
  size?: number;
  jetstreamDomain?: string;
  readyTimeoutMs?: number;
}

/** N routed nats-server processes with clustered JetStream, all on loopback. */
export class NatsCluster {
  readonly servers: NatsServer[];
  readonly urls: string[];

  private constructor(servers: NatsServer[]) {
    this.servers = servers;
    this.urls = servers.map((s) => s.url);
  }

  static async start(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
    if (!findNatsServerBinary()) {
      throw new NatsServerNotFoundError(
        "NatsCluster needs a nats-server binary (clusters do not run on containers)",
      );
    }
    const size = opts.size ?? 3;
    const name = `mesh-${randomBytes(4).toString("hex")}`;
    for (let attempt = 1; ; attempt++) {
      const [clientPorts, routePorts] = [await freePorts(size), await freePorts(size)];
      const started = await Promise.allSettled(
        routePorts.map((routePort, i) =>
          NatsServer.start({
            port: clientPorts[i],
            serverName: `${name}-n${i}`,
            jetstreamDomain: opts.jetstreamDomain,
            readyTimeoutMs: opts.readyTimeoutMs,
            cluster: {
              name,
              port: routePort,
              routes: routePorts.filter((p) => p !== routePort).map((p) => `nats-route://${LOOPBACK}:${p}`),
            },
          }),
        ),
      );
      const servers = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      const failures = started.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
      if (failures.length === 0) return new NatsCluster(servers);
      await Promise.allSettled(servers.map((s) => s.cleanup()));
      // Another process may have taken one of the probed ports; pick a fresh set.
      const inUse = failures.some((e) => e instanceof NatsServerStartError && e.addressInUse);
      if (!inUse || attempt >= PORT_ATTEMPTS) throw failures[0];
    }
  }

  /**
   * "Server is ready" only means each member listens; clustered JetStream additionally needs
   * routes up and a meta leader elected. Creating (and deleting) a probe stream with the
   * largest replica count the cluster allows proves all of that.
   */
  async waitForJetStream(timeoutMs = 60_000): Promise<void> {
    const nc = await connect({ servers: this.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const probe = `HARNESS_PROBE_${randomBytes(4).toString("hex")}`;
      // Before a meta leader exists, 2.9 drops JS API requests instead of answering 503, so
      // each attempt can only time out: start short, then back off for a loaded machine.
      let attemptTimeoutMs = 1_000;
      await waitFor(
        async () => {
          const timeout = attemptTimeoutMs;
          attemptTimeoutMs = Math.min(attemptTimeoutMs * 2, 8_000);
          const jsm = await jetstreamManager(nc, { timeout });
          await jsm.streams.add({
            name: probe,
            subjects: [`harness.probe.${probe}`],
            num_replicas: Math.min(3, this.servers.length),
          });
          await jsm.streams.delete(probe);
          return true;
        },
        { name: "cluster JetStream meta leader and R3 stream", timeoutMs, intervalMs: 250 },
      );
    } finally {
      await nc.close();
    }
  }

  /** Cleans up every member even if one fails. */
  async cleanup(): Promise<void> {
    const results = await Promise.allSettled(this.servers.map((s) => s.cleanup()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
  }
}
