/**
 * A real `meshd` child (spawnMeshd: node dist/daemon/main.js) for end-to-end CLI tests: command
 * runner only, no HTTP, ready once its gRPC socket exists (its stderr in the error otherwise).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, waitFor } from "../harness/index.js";
import { type MeshdProcess, spawnMeshd } from "./mesh.js";

export interface Meshd extends MeshdProcess {
  name: string;
  socket: string;
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
  const p = await spawnMeshd([
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
  ]);
  let exited = false;
  void p.exited.then(() => {
    exited = true;
  });
  const socket = join(stateDir, "meshd.sock");
  const ready = await waitFor(() => (exited ? "exited" : existsSync(socket) && "ready"), {
    name: `meshd ${o.name} socket`,
    timeoutMs: 60_000,
  }).catch((err: Error) => err.message);
  if (ready !== "ready") {
    p.kill("SIGKILL");
    throw new Error(`meshd ${o.name} did not come up (${ready}):\n${p.stderr().slice(-4000)}`);
  }
  return { ...p, name: o.name, socket };
}

/** SIGTERM, then SIGKILL after 30 s; resolves once it exited. */
export async function stopMeshdProcess(d: MeshdProcess): Promise<void> {
  await d.stop(30_000);
}
