/**
 * A real `meshd` child (node dist/daemon/main.js) for end-to-end CLI tests: command runner only,
 * no HTTP, its output kept for the failure message, ready once its gRPC socket exists.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, waitFor } from "../harness/index.js";
import { MESHD_BIN } from "./mesh.js";

export interface Meshd {
  name: string;
  stateDir: string;
  socket: string;
  proc: ChildProcess;
  output: string[];
  exited: boolean;
}

export interface MeshdOptions {
  natsUrl: string;
  name: string;
  extra?: string[];
  logLevel?: string;
  /** Prefix of the temp state dir. */
  prefix?: string;
}

export async function startMeshdProcess(o: MeshdOptions): Promise<Meshd> {
  const stateDir = await makeTempDir(`${o.prefix ?? "meshd"}-${o.name}-`);
  const proc = spawn(
    process.execPath,
    [
      MESHD_BIN,
      "--nats",
      o.natsUrl,
      "--state-dir",
      stateDir,
      "--name",
      o.name,
      "--pools",
      "default",
      "--slots",
      "2",
      "--runners",
      "command",
      "--no-http",
      "--log-level",
      o.logLevel ?? "info",
      ...(o.extra ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const d: Meshd = {
    name: o.name,
    stateDir,
    socket: join(stateDir, "meshd.sock"),
    proc,
    output: [],
    exited: false,
  };
  const keep = (chunk: Buffer) => {
    d.output.push(chunk.toString());
    if (d.output.length > 400) d.output.splice(0, 100);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  proc.once("exit", () => {
    d.exited = true;
  });
  const ready = await waitFor(() => (d.exited ? "exited" : existsSync(d.socket) && "ready"), {
    name: `meshd ${o.name} socket`,
    timeoutMs: 60_000,
  }).catch((err: Error) => err.message);
  if (ready !== "ready") {
    proc.kill("SIGKILL");
    throw new Error(`meshd ${o.name} did not come up (${ready}):\n${d.output.join("").slice(-4000)}`);
  }
  return d;
}

/** SIGTERM, then SIGKILL after 30 s; resolves once it exited. */
export async function stopMeshdProcess(d: Meshd): Promise<void> {
  if (d.exited) return;
  const exited = new Promise((resolve) => d.proc.once("exit", resolve));
  d.proc.kill("SIGTERM");
  const killer = setTimeout(() => d.proc.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(killer);
}
