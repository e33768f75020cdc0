/**
 * A nats-server started from a given config file (the deploy/ configs, or one a red-team test
 * writes), optionally inside a network namespace. The config says `listen: <host>:-1`; the
 * port is read from the log. Killed with the test process (parent-death signal).
 */
import type { ChildProcess } from "node:child_process";
import { spawnChild } from "../../lib/child/index.js";
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
  // setpriv's parent-death signal reaches `ip netns exec`, which execs nats-server (same pid).
  const server = spawnChild([...inner, "-c", configFile], { parentDeath: "signal", group: false });
  const child = server.process;
  const logs: string[] = [];
  const ready = new Deferred<{ host: string; port: number }>();
  let listen: { host: string; port: number } | undefined;
  const output = (async () => {
    for await (const { line } of server.lines()) {
      logs.push(line);
      if (logs.length > 300) logs.shift();
      const m = /Listening for client connections on (.+):(\d+)$/.exec(line);
      if (m) listen = { host: m[1]!, port: Number(m[2]) };
      if (line.includes("Server is ready") && listen) ready.resolve(listen);
    }
  })();
  const closed = (async () => {
    const { exitCode, signal } = await server.exited;
    await output;
    ready.reject(
      new Error(
        `nats-server -c ${configFile} exited (${signal ?? exitCode}):\n${logs.slice(-20).join("\n")}`,
      ),
    );
  })();
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
      server.signal("SIGTERM");
      await closed;
    },
  };
}
