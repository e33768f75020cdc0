/**
 * Where a tool's write really lands. `tool_input.file_path` is what the model wrote: relative
 * to the hook input's `cwd`, possibly with `..`, possibly through symlinks. The path is walked
 * component by component as the kernel would (a symlink is followed, `..` goes up from where
 * the walk really is), and once a component does not exist the rest is taken literally.
 */
import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import { posix } from "node:path";

const MAX_LINKS = 40;

export type ResolvedPath =
  | { kind: "inside"; rel: string; real: string }
  | { kind: "outside"; real: string }
  | { kind: "invalid"; why: string };

/** The path the kernel would reach for `abs` (absolute, `/`-separated). Throws on a symlink loop. */
export function physicalPath(abs: string): string {
  let parts = abs.split("/").filter((s) => s !== "");
  let cur = "/";
  let links = 0;
  while (parts.length > 0) {
    const name = parts.shift() as string;
    if (name === ".") continue;
    if (name === "..") {
      cur = posix.dirname(cur);
      continue;
    }
    const next = posix.join(cur, name);
    let isLink: boolean;
    try {
      isLink = lstatSync(next).isSymbolicLink();
    } catch {
      // Does not exist (yet): what follows is created as written.
      return posix.resolve(next, ...parts);
    }
    if (isLink) {
      if (++links > MAX_LINKS) throw new Error(`too many symbolic links at ${next}`);
      const target = readlinkSync(next);
      parts = [...target.split("/").filter((s) => s !== ""), ...parts];
      if (target.startsWith("/")) cur = "/";
      continue;
    }
    cur = next;
  }
  return cur;
}

/** The worktree's own real path (it may itself sit under a symlinked folder such as /tmp). */
export function realRoot(worktree: string): string {
  return realpathSync(worktree);
}

function classify(root: string, real: string): ResolvedPath {
  const rel = posix.relative(root, real);
  if (rel === "") return { kind: "outside", real };
  if (rel === ".." || rel.startsWith("../") || posix.isAbsolute(rel)) return { kind: "outside", real };
  return { kind: "inside", rel, real };
}

/**
 * Resolves `p` (relative to `cwd` unless absolute) against the worktree whose real path is
 * `root`, in every reading a writer may apply: the kernel's (`..` after a symlink goes up from
 * the symlink's target) and the lexical one a tool may apply first. Distinct readings are all
 * returned; a write is allowed only when every one of them is.
 */
export function resolveToolPath(root: string, cwd: string, p: string): ResolvedPath[] {
  if (typeof p !== "string" || p.length === 0) return [{ kind: "invalid", why: "the path is empty" }];
  if (p.includes("\u0000")) return [{ kind: "invalid", why: "the path holds a NUL byte" }];
  if (p.startsWith("~")) return [{ kind: "invalid", why: `"${p}" starts with ~` }];
  const raw = p.startsWith("/") ? p : `${cwd.replace(/\/+$/, "")}/${p}`;
  if (!raw.startsWith("/"))
    return [{ kind: "invalid", why: `the working directory "${cwd}" is not absolute` }];
  const out: ResolvedPath[] = [];
  for (const candidate of [raw, posix.resolve(raw)]) {
    let real: string;
    try {
      real = physicalPath(candidate);
    } catch (err) {
      return [{ kind: "invalid", why: (err as Error).message }];
    }
    const r = classify(root, real);
    if (!out.some((o) => "real" in o && o.real === real)) out.push(r);
  }
  return out;
}
