/**
 * Putting `mesh-task` on the agent's PATH for one session: a small launcher in the attempt's
 * private runtime folder (`<runtimeDir>/bin/mesh-task`, 0700) that runs mesh-task with this
 * Node, prepended to PATH, and the per-task port's address and token in the environment.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { ShimJob } from "./job.js";
import { shellQuote } from "./owns-hook-install.js";
import { TASK_PORT_ENV, TASK_PORT_TOKEN_ENV } from "./task-port-protocol.js";

/** argv of mesh-task next to this module (built JS, or the TypeScript source through tsx). */
export function meshTaskArgv(): string[] {
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  if (here.endsWith(".ts")) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    return [process.execPath, "--import", tsx, join(dir, "mesh-task.ts")];
  }
  return [process.execPath, join(dir, "mesh-task.js")];
}

/** The variables to add to Claude Code's environment (PATH with the launcher's folder first). */
export async function installMeshTask(
  job: ShimJob,
  env: Readonly<Record<string, string>>,
): Promise<Record<string, string> | undefined> {
  const port = job.meshTask;
  if (!port) return undefined;
  const bin = join(job.runtimeDir, "bin");
  await mkdir(bin, { recursive: true, mode: 0o700 });
  const launcher = join(bin, "mesh-task");
  await writeFile(launcher, `#!/bin/sh\nexec ${shellQuote(meshTaskArgv())} "$@"\n`, { mode: 0o700 });
  await chmod(launcher, 0o700);
  return {
    PATH: env.PATH ? `${bin}:${env.PATH}` : bin,
    [TASK_PORT_ENV]: port.path,
    [TASK_PORT_TOKEN_ENV]: port.token,
  };
}
