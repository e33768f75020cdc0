/** Where the daemon is: `--daemon` / MESH_DAEMON as a Unix socket path or host:port. */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { CliError, EXIT } from "./errors.js";

export type DaemonTarget =
  | { kind: "unix"; path: string; display: string }
  | { kind: "tcp"; host: string; port: number; display: string };

export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.MESH_STATE_DIR || join(homedir(), ".agent-mesh"), "meshd.sock");
}

export function parseDaemonTarget(
  value: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): DaemonTarget {
  const v = value?.trim();
  if (!v) {
    const path = defaultSocketPath(env);
    return { kind: "unix", path, display: path };
  }
  if (v.startsWith("unix:")) {
    const path = resolve(v.slice("unix:".length).replace(/^\/\/(?=\/)/, ""));
    return { kind: "unix", path, display: path };
  }
  if (v.includes("/") || v.endsWith(".sock")) {
    const path = resolve(v.startsWith("~/") ? join(homedir(), v.slice(2)) : v);
    return { kind: "unix", path, display: path };
  }
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) {
    throw new CliError(
      EXIT.USAGE,
      `--daemon "${v}" is neither a Unix socket path nor host:port; e.g. --daemon ~/.agent-mesh/meshd.sock or --daemon mesh.example.com:7443`,
      "INVALID_ARGUMENT",
      { field: "daemon" },
    );
  }
  const host = m[1] as string;
  return { kind: "tcp", host, port, display: `${host}:${port}` };
}
