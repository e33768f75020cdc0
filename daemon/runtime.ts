/** The built-in runners and workspace provider a daemon uses, built from its config. */
import { join } from "node:path";
import type { DaemonConfig } from "./config.js";
import type { Logger } from "./log.js";
import { type FileLeases, type MeshObserver, noopObserver, type Runner } from "./claim/index.js";
import {
  type AddTaskFn,
  ClaudeRunner,
  CommandRunner,
  FileLeasePorts,
  NoopRunner,
  planOwners,
} from "./runner/index.js";
import type { PlanStore } from "./plans/index.js";
import type { TaskStore } from "./tasks/index.js";

/** What runners need from a started daemon (set once it is connected; runners exist before). */
export interface RunnerWiring {
  store?: TaskStore;
  fileLeases?: FileLeases;
  /** The plan records (the ownership hook names the owners among a plan's tasks). */
  plans?: Pick<PlanStore, "get">;
  /** Delegation: a running task adds a task to its plan (set once the daemon's service exists). */
  addTask?: AddTaskFn;
}
import {
  type KeepBranch,
  MeshWorkspaces,
  type RepoTransfer,
  type WorkspaceProvider,
} from "./workspace/index.js";

export function defaultRunners(
  config: DaemonConfig,
  log: Logger,
  redact?: (text: string) => string,
  observer: MeshObserver = noopObserver,
  wiring: RunnerWiring = {},
): Runner[] {
  const runners: Runner[] = [];
  if (config.runners.includes("noop")) runners.push(new NoopRunner());
  if (config.runners.includes("command"))
    runners.push(new CommandRunner({ passEnv: config.command.passEnv, ...(redact ? { redact } : {}) }));
  if (config.runners.includes("claude")) {
    const c = config.claude;
    runners.push(
      new ClaudeRunner({
        claudeCommand: c.command,
        permissionMode: c.permissionMode,
        ...(c.model ? { defaultModel: c.model } : {}),
        ...(c.allowedTools ? { allowedTools: c.allowedTools } : {}),
        ...(c.disallowedTools ? { disallowedTools: c.disallowedTools } : {}),
        ...(c.maxTurns !== undefined ? { maxTurns: c.maxTurns } : {}),
        ...(c.maxBudgetUsd !== undefined ? { maxBudgetUsd: c.maxBudgetUsd } : {}),
        extraEnv: c.env,
        passEnv: c.passEnv,
        apiKey: c.apiKeyFile
          ? { file: c.apiKeyFile, as: c.credentialEnv }
          : { env: c.credentialEnv, as: c.credentialEnv },
        configRoot: join(config.stateDir, "claude"),
        hangTimeoutMs: c.hangTimeout,
        heartbeatMs: Math.max(1000, Math.min(15_000, config.heartbeatMs)),
        maxEventsPerAttempt: config.limits.agentEventsPerAttempt,
        maxEventBytesPerAttempt: config.limits.agentEventBytesPerAttempt,
        onEventDropped: (e) => observer.agentEventDropped?.(e),
        // The ownership hook: owners of a plan's other tasks, and file leases for tasks without owns.
        planOwners: async (spec) => {
          const { store, plans } = wiring;
          return store && plans ? planOwners({ store, plan: (id) => plans.get(id) })(spec) : {};
        },
        taskPorts: new FileLeasePorts({
          leases: () => wiring.fileLeases,
          addTask: () => (config.plans.maxDepth > 0 ? wiring.addTask : undefined),
          renewMs: config.heartbeatMs,
          log,
        }),
        logger: log,
      }),
    );
  }
  return runners;
}

/**
 * Where attempts run: a git worktree on `mesh/<task id>` for tasks with a repo, an empty folder
 * for the rest; idle ones are removed after `workspaces.retention`, task branches once
 * `keepBranch` says the task is gone, caches after `workspaces.cacheRetention`.
 */
export function defaultWorkspaces(
  config: DaemonConfig,
  log: Logger,
  opts: { keepBranch?: KeepBranch; transfer?: RepoTransfer } = {},
): WorkspaceProvider {
  return new MeshWorkspaces({
    stateDir: config.stateDir,
    retentionMs: config.workspaces.retention,
    cacheRetentionMs: config.workspaces.cacheRetention,
    gitConfig: config.workspaces.gitConfig,
    ...(opts.keepBranch ? { keepBranch: opts.keepBranch } : {}),
    ...(opts.transfer ? { transfer: opts.transfer } : {}),
    log,
  });
}
