/**
 * The owns hook's verdict on one PreToolUse call: which files the tool would write, where they
 * really land, and whether this task may write them (its `owns`, or a first-come file lease
 * when it has none). Anything it cannot judge for a file tool is refused; a Bash command whose
 * writes it cannot tell is let through with a note (the result-time gate checks the diff).
 */
import { statSync } from "node:fs";
import { z } from "zod";
import { compileOwnsGlobs, type OwnsMatcher } from "../lib/index.js";
import { type BashTarget, bashWrites } from "./bash-writes.js";
import type { OwnsHookConfig } from "./hook-config.js";
import { realRoot, resolveToolPath } from "./owns-paths.js";
import type { LeaseAnswer } from "./task-port-client.js";
import { firstIssue } from "./task-port-protocol.js";

export type Decision = { allow: true; note?: string } | { allow: false; reason: string };

export interface DecideDeps {
  /** Asks the task port for a lease on a repository-relative path. */
  lease?: (rel: string) => Promise<LeaseAnswer>;
}

/** Tools that write the file named in their input, and the field that names it. */
export const FILE_TOOLS: Record<string, string> = {
  Write: "file_path",
  Edit: "file_path",
  MultiEdit: "file_path",
  NotebookEdit: "notebook_path",
};
/** The matcher the shim installs the hook with. */
export const HOOK_MATCHER = [...Object.keys(FILE_TOOLS), "Bash"].join("|");
const PATH_FIELDS = ["file_path", "notebook_path", "path", "paths", "target", "destination"];

const hookInputSchema = z.looseObject({
  hook_event_name: z.literal("PreToolUse"),
  tool_name: z.string().min(1),
  tool_input: z.record(z.string(), z.unknown()),
  cwd: z.string().min(1),
});

interface Target extends BashTarget {
  tool: string;
}

/** The literal folder part of each glob (`src/api/**` -> `src/api`): where an owned path can be. */
function literalPrefixes(globs: readonly string[]): string[] {
  return globs.map((g) => {
    const segs: string[] = [];
    for (const s of g.split("/")) {
      if (/[*?[\]{}!()+@]/.test(s)) break;
      segs.push(s);
    }
    return segs.join("/");
  });
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

export class OwnsJudge {
  private readonly root: string;
  private readonly mine: OwnsMatcher | undefined;
  private readonly prefixes: string[];
  private readonly others: Array<{ taskId: string; match: OwnsMatcher }>;

  constructor(
    private readonly cfg: OwnsHookConfig,
    private readonly deps: DecideDeps = {},
  ) {
    this.root = realRoot(cfg.worktree);
    this.mine = cfg.owns ? compileOwnsGlobs(cfg.owns) : undefined;
    this.prefixes = cfg.owns ? literalPrefixes(cfg.owns) : [];
    this.others = Object.entries(cfg.others).map(([taskId, globs]) => ({
      taskId,
      match: compileOwnsGlobs(globs),
    }));
  }

  async decide(raw: unknown): Promise<Decision> {
    const parsed = hookInputSchema.safeParse(raw);
    if (!parsed.success)
      return { allow: false, reason: `mesh: malformed hook input (${firstIssue(parsed.error)})` };
    const input = parsed.data;
    const tool = input.tool_name;
    const targets: Target[] = [];
    let note: string | undefined;
    const field = FILE_TOOLS[tool];
    if (field) {
      const p = input.tool_input[field];
      if (typeof p !== "string") return { allow: false, reason: `mesh: ${tool} without a ${field} string` };
      targets.push({ tool, path: p, how: tool });
    } else if (tool === "Bash") {
      const command = input.tool_input.command;
      if (typeof command !== "string") return { allow: false, reason: "mesh: Bash without a command string" };
      const w = bashWrites(command);
      for (const t of w.targets) targets.push({ ...t, tool });
      if (w.unknown.length > 0)
        note = `mesh: could not tell every file this command writes (${w.unknown.join("; ")}); the result-time ownership check will`;
    } else {
      const named = PATH_FIELDS.find((f) => input.tool_input[f] !== undefined);
      if (named)
        return {
          allow: false,
          reason: `mesh: the ownership hook does not know the tool ${tool}, which names a ${named}`,
        };
      return { allow: true };
    }
    for (const t of targets) {
      const why = await this.check(input.cwd, t);
      if (why) return { allow: false, reason: `mesh: ${t.how} of "${t.path}" refused: ${why}` };
    }
    return note ? { allow: true, note } : { allow: true };
  }

  /** Why `t` may not be written, or undefined when it may. */
  private async check(cwd: string, t: Target): Promise<string | undefined> {
    for (const r of resolveToolPath(this.root, cwd, t.path)) {
      if (r.kind === "invalid") return r.why;
      if (r.kind === "outside") return `it resolves to ${r.real}, outside the task's worktree ${this.root}`;
      const rels = t.into && isDir(r.real) ? t.into.map((n) => `${r.rel}/${n}`) : [r.rel];
      for (const rel of rels) {
        const why = await this.checkRel(rel, t.dir === true);
        if (why) return why;
      }
    }
    return undefined;
  }

  private async checkRel(rel: string, dir: boolean): Promise<string | undefined> {
    if (this.mine) {
      if (this.mine(rel)) return undefined;
      if (dir && this.prefixes.some((p) => p === rel || p.startsWith(`${rel}/`))) return undefined;
      const owner = this.others.find((o) => o.match(rel));
      const globs = (this.cfg.owns ?? []).join(", ");
      return owner
        ? `${rel} is owned by task ${owner.taskId}; task ${this.cfg.taskId} owns only ${globs}`
        : `${rel} is outside the owns of task ${this.cfg.taskId} (${globs})`;
    }
    if (dir) return undefined;
    if (!this.deps.lease) return "no file lease service for a task without owns";
    const a = await this.deps.lease(rel);
    if (a.granted) return undefined;
    const h = a.holder;
    return `${rel} is leased by running task ${h.taskId} (attempt ${h.attempt} on worker ${h.workerId}); it is free once that task ends`;
  }
}
