/**
 * A nats-server child with JetStream for `mesh up`: loopback only, data under the state dir,
 * killed with us (pdeathsig on Linux) so it never outlives the mesh it belongs to.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { CliError, EXIT } from "./errors.js";

export const NATS_INSTALL_HINT =
  "install it: `sudo apt-get install nats-server` (Debian/Ubuntu; the binary is /usr/sbin/nats-server), " +
  "`brew install nats-server` (macOS), or see https://docs.nats.io; or join an existing NATS with --nats <url>";

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
  pid: number | undefined;
  logFile: string;
  stop(): Promise<void>;
}

export async function startLocalNats(opts: {
  stateDir: string;
  host: string;
  port: number;
  bin?: string;
}): Promise<LocalNats> {
  const pinned = opts.bin ?? process.env.MESH_NATS_SERVER;
  const bin = pinned ? (existsSync(pinned) ? pinned : undefined) : findNatsServer();
  if (!bin) {
    const where = pinned ? `${pinned} (MESH_NATS_SERVER) does not exist` : "nats-server not found on PATH";
    throw new CliError(EXIT.OTHER, `${where}; ${NATS_INSTALL_HINT}`, "MISSING_DEPENDENCY");
  }
  const storeDir = join(opts.stateDir, "nats");
  await mkdir(storeDir, { recursive: true, mode: 0o700 });
  const logFile = join(opts.stateDir, "nats-server.log");
  const args = ["-a", opts.host, "-p", String(opts.port), "-js", "-sd", storeDir, "-n", "agent-mesh-local"];
  const setpriv =
    process.platform === "linux" && existsSync("/usr/bin/setpriv") ? "/usr/bin/setpriv" : undefined;
  const child: ChildProcess = setpriv
    ? spawn(setpriv, ["--pdeathsig", "SIGKILL", "--", bin, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    : spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  const log = createWriteStream(logFile, { flags: "a" });
  let tail = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new CliError(EXIT.OTHER, `nats-server did not become ready in 20 s; see ${logFile}`, "TIMEOUT"),
        ),
      20_000,
    );
    child.stderr?.on("data", (b: Buffer) => {
      log.write(b);
      tail = (tail + b.toString()).slice(-4000);
      if (tail.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      const inUse = /address already in use/.test(tail);
      reject(
        new CliError(
          EXIT.OTHER,
          inUse
            ? `nats-server could not listen on ${opts.host}:${opts.port}: the port is in use; pick another with --nats-port or join it with --nats nats://${opts.host}:${opts.port}`
            : `nats-server exited (code ${code}) before it was ready; see ${logFile}`,
          "UNAVAILABLE",
        ),
      );
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    url: `nats://${opts.host === "0.0.0.0" ? "127.0.0.1" : opts.host}:${opts.port}`,
    pid: child.pid,
    logFile,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(t);
        }
        log.end();
      })();
      return stopping;
    },
  };
}
