/**
 * The secret values this daemon knows: its NATS password and token, the token files of its
 * listeners, the Claude API key (environment or file), and every secret-looking variable of its
 * environment (including those an operator passes on to tasks with `passEnv`). A child that
 * prints one of them has it masked before the line reaches an event, a record or a log.
 */
import { readFileSync } from "node:fs";
import { secretEnvValues } from "../agent-shim/index.js";
import type { DaemonConfig } from "./config.js";

function fileValue(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8").trim() || undefined;
  } catch {
    return undefined; // the part that needs it reports the unreadable file
  }
}

export function daemonSecrets(
  config: DaemonConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string[] {
  const values = [
    config.nats.password,
    config.nats.token,
    fileValue(config.nats.nkeySeedFile),
    fileValue(config.grpc.tcp?.tokenFile),
    fileValue(config.http.tokenFile),
    fileValue(config.claude.apiKeyFile),
    ...secretEnvValues(env),
  ];
  return values.filter((v): v is string => typeof v === "string" && v.length > 0);
}
