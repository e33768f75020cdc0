/**
 * A nats-server started from a given config file (the deploy/ configs, or one a red-team test
 * writes), optionally inside a network namespace. The config says `listen: <host>:-1`; the
 * port is read from the log. Killed with the test process (parent-death signal).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { findNatsServerBinary } from "../harness/index.js";
import { Deferred, withTimeout } from "../harness/wait.js";

export interface ConfServer {
  url: string;
  host: string;
  port: number;
  child: ChildProcess;
  logs: string[];
  stop(): Promise<void>;
}

export async function startConfServer(
  configFile: string,
  opts: { netns?: string; readyTimeoutMs?: number; scheme?: string } = {},
): Promise<ConfServer> {
  const bin = findNatsServerBinary();
  if (!bin) throw new Error("nats-server not found (sudo apt-get install nats-server)");
  const inner = opts.netns ? ["/usr/sbin/ip", "netns", "exec", opts.netns, bin] : [bin];
  const child = spawn("/usr/bin/setpriv", ["--pdeathsig", "KILL", "--", ...inner, "-c", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const ready = new Deferred<{ host: string; port: number }>();
  let listen: { host: string; port: number } | undefined;
  const closed = new Promise<void>((resolve) =>
    child.once("close", (code, signal) => {
      ready.reject(
        new Error(`nats-server -c ${configFile} exited (${signal ?? code}):\n${logs.slice(-20).join("\n")}`),
      );
      resolve();
    }),
  );
  for (const s of [child.stdout, child.stderr]) {
    if (!s) continue;
    createInterface({ input: s }).on("line", (line) => {
      logs.push(line);
      if (logs.length > 300) logs.shift();
      const m = /Listening for client connections on (.+):(\d+)$/.exec(line);
      if (m) listen = { host: m[1]!, port: Number(m[2]) };
      if (line.includes("Server is ready") && listen) ready.resolve(listen);
    });
  }
  const { host, port } = await withTimeout(
    ready.promise,
    opts.readyTimeoutMs ?? 15_000,
    `nats-server -c ${configFile}`,
  );
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${opts.scheme ?? "nats"}://${h}:${port}`,
    host,
    port,
    child,
    logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await closed;
    },
  };
}
