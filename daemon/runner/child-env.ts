/**
 * The environment a runner's child starts with: a small base taken from the daemon's own
 * environment, the names the operator opts in (`passEnv`), the task's allowed `env`, and the
 * runner's own variables. Nothing else of the daemon's environment (API keys, cloud and NATS
 * credentials, proxies it was not told to pass) reaches a child.
 */

/** What every child gets from the daemon's environment, when set. */
export const BASE_CHILD_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "TMPDIR",
] as const;

export interface ChildEnvParts {
  /** The daemon's environment the base and `passEnv` names are read from. */
  from: Readonly<Record<string, string | undefined>>;
  /** Names of `from` beyond the base to pass on (the operator's opt-in). */
  passEnv?: readonly string[];
  /** The task's `env` (already checked against the worker's allowlist). */
  task?: Readonly<Record<string, string>>;
  /** The runner's own variables; they win over everything else. */
  own?: Readonly<Record<string, string>>;
}

export function childEnv(parts: ChildEnvParts): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of [...BASE_CHILD_ENV, ...(parts.passEnv ?? [])]) {
    const v = parts.from[k];
    if (v !== undefined) env[k] = v;
  }
  Object.assign(env, parts.task ?? {}, parts.own ?? {});
  return env;
}
