/**
 * Helpers for the live-view tests: a small mesh of `meshd` child processes (each pinned by a
 * `box` label, so a task runs where the test says), the built `mesh` CLI, and a private tmux
 * server (its own TMUX_TMPDIR) driven by argv: new-session, send-keys, capture-pane.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { makeTempDir, type NatsServer, waitFor } from "../harness/index.js";
import { MESH_BIN, type MeshdProcess, spawnMeshd } from "./mesh.js";

export interface Box {
  name: string;
  proc: MeshdProcess;
  socket: string;
}

export async function startBox(
  nats: NatsServer,
  work: string,
  name: string,
  extra: Record<string, unknown> = {},
  logLevel = "warn",
): Promise<Box> {
  const cfg = join(work, `${name}.json`);
  await writeFile(
    cfg,
    JSON.stringify({
      name,
      labels: { box: name },
      lease: "2s",
      presenceInterval: "500ms",
      retryDelay: "100ms",
      slots: 4,
      http: { enabled: false },
      ...extra,
    }),
  );
  const proc = await spawnMeshd(["-c", cfg, "--nats", nats.url, "--log-level", logLevel]);
  const socket = join(proc.stateDir, "meshd.sock");
  await waitFor(() => existsSync(socket), { name: `meshd ${name} socket`, timeoutMs: 60_000 });
  return { name, proc, socket };
}

export async function mesh(socket: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = await execa(process.execPath, [MESH_BIN, ...args], {
    reject: false,
    env: { NO_COLOR: "1", MESH_DAEMON: socket, ...env },
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A command task pinned to `box` that runs until `file` exists. */
export function untilFileTask(id: string, box: string, file: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    runner: "command",
    prompt: "wait for the gate",
    labels: { box },
    maxAttempts: 1,
    command: [
      process.execPath,
      "-e",
      `const fs=require("fs");setInterval(()=>{if(fs.existsSync(${JSON.stringify(file)}))process.exit(0)},50)`,
    ],
    ...extra,
  };
}

export async function submit(socket: string, work: string, tasks: unknown[]): Promise<void> {
  const file = join(work, `submit-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify({ tasks }));
  const r = await mesh(socket, ["submit", file]);
  if (r.code !== 0) throw new Error(`mesh submit: ${r.stderr}`);
}

/** A tmux server of its own (its socket under a temp TMUX_TMPDIR); every call by argv. */
export class Tmux {
  private constructor(readonly env: NodeJS.ProcessEnv) {}

  static async start(): Promise<Tmux> {
    const dir = await makeTempDir("tmux-");
    const env: NodeJS.ProcessEnv = { ...process.env, TMUX_TMPDIR: dir, NO_COLOR: "1" };
    delete env.TMUX;
    delete env.TMUX_PANE;
    return new Tmux(env);
  }

  run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile("tmux", args, { env: { ...this.env, ...extraEnv }, encoding: "utf8" }, (err, out, stderr) =>
        err ? reject(new Error(`tmux ${args.join(" ")}: ${stderr || err.message}`)) : resolve(out),
      );
    });
  }

  capture(target: string): Promise<string> {
    return this.run(["capture-pane", "-p", "-t", target]);
  }

  keys(target: string, ...keys: string[]): Promise<string> {
    return this.run(["send-keys", "-t", target, ...keys]);
  }

  /** Task panes of a window: task id per pane (the `@mesh-task` option), the status pane left out. */
  async taskPanes(target: string): Promise<string[]> {
    const out = await this.run(["list-panes", "-t", target, "-F", "#{@mesh-task}"]);
    return out
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .sort();
  }

  kill(): Promise<void> {
    return this.run(["kill-server"]).then(
      () => undefined,
      () => undefined,
    );
  }
}

/** The status word `mesh top` shows for a task id in a captured pane (undefined: not listed). */
export function statusIn(capture: string, id: string): string | undefined {
  for (const line of capture.split("\n")) {
    const m = /^[> ] (\S+)\s+(\S+)/.exec(line);
    if (m && m[2] === id) return m[1];
  }
  return undefined;
}
