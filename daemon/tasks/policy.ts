/**
 * A worker's ceilings for task input, set by its operator: the most permissive permission mode a
 * Claude task may ask for, which tools a task may pre-approve, which repos it may name, and which
 * environment names it may set. A task can only narrow them. The same check runs at submit (the
 * submitting daemon's ceilings) and again before the claiming worker prepares anything (its own
 * ceilings: a remote worker's ceilings are the ones that protect it).
 */
import { resolve } from "node:path";
import { MeshError } from "../errors.js";
import { parseRepo, validateRef } from "./repo-syntax.js";
import { PERMISSION_ORDER, type TaskSpec } from "./spec.js";
import { type EnvPattern, envRefusal } from "./task-env.js";

export type PermissionMode = (typeof PERMISSION_ORDER)[number];

export const permissionRank = (m: PermissionMode): number => PERMISSION_ORDER.indexOf(m);

export interface TaskPolicy {
  /** The most permissive `agent.permissionMode` a task may ask for. */
  maxPermissionMode: PermissionMode;
  /** The operator's own pre-approved tools (`claude.allowedTools`): a task may keep any of them. */
  operatorTools: readonly string[];
  /** Further tools a task may pre-approve (`claude.taskAllowedTools`); `*`: any. */
  taskTools: readonly string[];
  /** Repos a task may name (`repos`): prefixes at a path boundary; undefined: any repo. */
  repos?: readonly string[] | undefined;
  /** Names a task's `env` may set (`taskEnv.allow`). */
  envAllow: readonly EnvPattern[];
  /** The most turns a task may ask for (`claude.maxTurns`); undefined: no ceiling. */
  maxTurns?: number | undefined;
  /** The largest budget a task may ask for (`claude.maxBudgetUsd`); undefined: no ceiling. */
  maxBudgetUsd?: number | undefined;
}

interface Problem {
  path: string;
  text: string;
}

function join(prefix: string, path: string): string {
  return prefix ? `${prefix}.${path}` : path;
}

/** A local path pattern is compared as a resolved path, a URL one as written. */
function normalizeRepoPattern(p: string): string {
  if (p.startsWith("/")) return resolve(p);
  if (p.startsWith("file://")) return resolve(decodeURIComponent(p.slice("file://".length)));
  return p;
}

function withinPrefix(value: string, pattern: string): boolean {
  if (value === pattern) return true;
  const boundary = /[/:]$/.test(pattern) ? pattern : `${pattern}/`;
  return value.startsWith(boundary);
}

/** Whether `repo` (already syntax-checked) is inside one of the `allowed` prefixes. */
export function repoAllowed(repo: string, allowed: readonly string[]): boolean {
  const src = parseRepo(repo);
  const value = src.localPath ?? src.url;
  // git and curl normalise dot segments and %-escapes: a prefix must not be walked out of.
  if (!src.localPath && (/(^|[/:])\.\.?([/]|$)/.test(value) || /%2[ef]/i.test(value))) return false;
  return allowed.some((p) => withinPrefix(value, normalizeRepoPattern(p)));
}

function problems(spec: TaskSpec, policy: TaskPolicy): Problem[] {
  const out: Problem[] = [];
  const a = spec.agent;
  if (a.permissionMode && permissionRank(a.permissionMode) > permissionRank(policy.maxPermissionMode)) {
    out.push({
      path: "agent.permissionMode",
      text: `"${a.permissionMode}" is above this worker's ceiling "${policy.maxPermissionMode}" (modes from least to most permissive: ${PERMISSION_ORDER.join(" < ")}); ask for ${policy.maxPermissionMode} or less, or have the operator raise claude.maxPermissionMode`,
    });
  }
  const limits = [
    ["maxTurns", a.maxTurns, policy.maxTurns, "claude.maxTurns"],
    ["maxBudgetUsd", a.maxBudgetUsd, policy.maxBudgetUsd, "claude.maxBudgetUsd"],
  ] as const;
  for (const [field, asked, ceiling, setting] of limits) {
    if (asked === undefined || ceiling === undefined || asked <= ceiling) continue;
    out.push({
      path: `agent.${field}`,
      text: `${asked} is above this worker's ceiling ${ceiling}; ask for ${ceiling} or less, or have the operator raise ${setting}`,
    });
  }
  const anyTool = policy.taskTools.includes("*");
  (a.allowedTools ?? []).forEach((tool, i) => {
    if (anyTool || policy.operatorTools.includes(tool) || policy.taskTools.includes(tool)) return;
    out.push({
      path: `agent.allowedTools[${i}]`,
      text: `"${tool}" is not a tool a task may pre-approve on this worker (allowed: ${[...policy.operatorTools, ...policy.taskTools].join(", ") || "none"}); drop it, or have the operator add it to claude.taskAllowedTools`,
    });
  });
  // Checked at submit already; again here for a spec that reached the bus some other way.
  const syntax = (path: "repo" | "ref", check: () => void): boolean => {
    try {
      check();
      return true;
    } catch (err) {
      out.push({
        path,
        text: (err instanceof Error ? err.message : String(err)).replace(/^(repo|ref) /, ""),
      });
      return false;
    }
  };
  const repoOk = spec.repo === undefined || syntax("repo", () => parseRepo(spec.repo as string));
  if (spec.ref !== undefined) syntax("ref", () => validateRef(spec.ref as string));
  if (repoOk && spec.repo !== undefined && policy.repos && !repoAllowed(spec.repo, policy.repos)) {
    out.push({
      path: "repo",
      text: `this worker only takes repos under ${policy.repos.join(", ") || "(none)"}; use one of those, or have the operator add it to repos`,
    });
  }
  for (const name of Object.keys(spec.env)) {
    const why = envRefusal(name, policy.envAllow);
    if (why) out.push({ path: `env.${name}`, text: why });
  }
  return out;
}

/** Throws INVALID_ARGUMENT naming the first field above a ceiling (and up to three more). */
export function checkTaskPolicy(spec: TaskSpec, policy: TaskPolicy, prefix = ""): void {
  const found = problems(spec, policy);
  if (found.length === 0) return;
  const shown = found.slice(0, 4).map((p) => `${join(prefix, p.path)}: ${p.text}`);
  if (found.length > 4) shown.push(`and ${found.length - 4} more`);
  throw new MeshError("INVALID_ARGUMENT", shown.join("; "), { field: join(prefix, found[0]!.path) });
}

/** The same check for a batch, naming tasks as `validateTaskBatch` does. */
export function checkBatchPolicy(specs: readonly TaskSpec[], policy: TaskPolicy): void {
  for (const [i, s] of specs.entries()) checkTaskPolicy(s, policy, specs.length === 1 ? "" : `tasks[${i}]`);
}
