/** What every command gets: output mode, the (lazily opened) client, and the Ctrl-C signal. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
// daemon/lite.js, not daemon/index.js: the full surface pulls in NATS, pino, ... and adds
// ~150 ms to every CLI start.
import { MAX_TIMER_MS, parseDuration } from "../daemon/lite.js";
import { MeshClient } from "./client.js";
import { CliError, EXIT } from "./errors.js";
import { type Style, terminalSafe, useColor } from "./format.js";
import { parseDaemonTarget } from "./target.js";

export interface GlobalOptions {
  json?: boolean;
  daemon?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tokenFile?: string;
  timeout: string;
  color: boolean;
  debug?: boolean;
}

export interface Ctx {
  json: boolean;
  style: Style;
  signal: AbortSignal;
  /** One line (or one JSON document) to stdout. */
  print(line: string): void;
  printJson(value: unknown): void;
  /** Progress and hints for a person, to stderr, only when it is a terminal. */
  note(line: string): void;
  /**
   * What a waiting person or script must hear (e.g. a task no live worker can serve): stderr in
   * every output mode, as `{"warning":{"code","message","taskId","reason"}}` under --json.
   */
  warn(w: Warning): void;
  client(): MeshClient;
  close(): void;
}

export interface Warning {
  code: string;
  message: string;
  taskId?: string;
  reason?: string;
}

/** A duration flag in ms; `allowZero` for flags where 0 means "no limit". */
export function parseDurationFlag(value: string, flag: string, allowZero = false): number {
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : parseDuration(value);
  if (ms !== undefined && ms > MAX_TIMER_MS) {
    // A longer timer would fire at once (Node clamps it to 1 ms).
    throw new CliError(
      EXIT.USAGE,
      `${flag} "${value}" is longer than the limit of 24d (${MAX_TIMER_MS} ms)`,
      "INVALID_ARGUMENT",
      { field: flag },
    );
  }
  if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
    throw new CliError(
      EXIT.USAGE,
      `${flag} "${value}" is not a duration; use e.g. 30s, 5m, 2h${allowZero ? ", or 0 for no limit" : ""}`,
      "INVALID_ARGUMENT",
      {
        field: flag,
      },
    );
  }
  return ms;
}

function readToken(o: GlobalOptions): string | undefined {
  if (o.tokenFile) {
    try {
      return readFileSync(o.tokenFile, "utf8").trim() || undefined;
    } catch (err) {
      throw new CliError(
        EXIT.USAGE,
        `--token-file ${o.tokenFile}: cannot read it (${(err as Error).message})`,
        "INVALID_ARGUMENT",
        {
          field: "--token-file",
        },
      );
    }
  }
  return process.env.MESH_TOKEN || undefined;
}

export function makeContext(cmd: Command, signal: AbortSignal): Ctx {
  const o = cmd.optsWithGlobals<GlobalOptions>();
  const json = Boolean(o.json);
  const style: Style = { color: !json && useColor(process.stdout, process.env, o.color) };
  let client: MeshClient | undefined;
  return {
    json,
    style,
    signal,
    print: (line) => process.stdout.write(`${terminalSafe(line)}\n`),
    printJson: (value) => process.stdout.write(`${JSON.stringify(value)}\n`),
    // Notes are for a person at a terminal; piped stderr carries errors only.
    note: (line) => {
      if (!json && process.stderr.isTTY) process.stderr.write(`${line}\n`);
    },
    warn: (w) => {
      const line = json
        ? JSON.stringify({
            warning: { code: w.code, message: w.message, taskId: w.taskId ?? null, reason: w.reason ?? null },
          })
        : `warning: ${w.message}`;
      process.stderr.write(`${line}\n`);
    },
    client: () => {
      if (!client) {
        const token = readToken(o);
        client = new MeshClient({
          target: parseDaemonTarget(o.daemon),
          timeoutMs: parseDurationFlag(o.timeout, "--timeout"),
          ...(token ? { token } : {}),
          ...(o.tlsCa ? { tlsCaFile: o.tlsCa } : {}),
          ...(o.tlsCert ? { tlsCertFile: o.tlsCert } : {}),
          ...(o.tlsKey ? { tlsKeyFile: o.tlsKey } : {}),
        });
      }
      return client;
    },
    close: () => client?.close(),
  };
}
