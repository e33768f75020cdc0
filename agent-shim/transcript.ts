/**
 * Making `--resume` work across attempts. Claude Code keeps a session's transcript at
 * `$CLAUDE_CONFIG_DIR/projects/<cwd-slug>/<session>.jsonl`, and older versions (2.1.112) only
 * resume from the same cwd. A new attempt may run in a different worktree path, so the
 * transcript is copied under the new cwd's slug when it lives elsewhere.
 */
import { copyFile, mkdir, readdir, realpath, stat } from "node:fs/promises";
import { join } from "node:path";

const MAX_SLUG = 200;

/** Java-style string hash, as Claude Code uses for long slugs. */
function hashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = ((h << 5) - h + s.charCodeAt(i)) | 0;
  return h;
}

/** The project folder name Claude Code (2.1.x) derives from a cwd. */
export function projectSlug(cwd: string): string {
  const slug = cwd.replace(/[^a-zA-Z0-9]/g, "-");
  if (slug.length <= MAX_SLUG) return slug;
  return `${slug.slice(0, MAX_SLUG)}-${Math.abs(hashCode(cwd)).toString(36)}`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export type ResumeCheck = { ok: true; copiedFrom?: string } | { ok: false; reason: string };

/** Finds the session's transcript in `configDir` and makes it visible from `workdir`. */
export async function prepareResume(
  configDir: string,
  workdir: string,
  sessionId: string,
): Promise<ResumeCheck> {
  if (!/^[A-Za-z0-9-]+$/.test(sessionId)) return { ok: false, reason: "not a session id" };
  const projects = join(configDir, "projects");
  const file = `${sessionId}.jsonl`;
  const cwd = await realpath(workdir).catch(() => workdir);
  const target = join(projects, projectSlug(cwd));
  if (await exists(join(target, file))) return { ok: true };
  const dirs = await readdir(projects).catch(() => [] as string[]);
  for (const d of dirs) {
    const candidate = join(projects, d, file);
    if (!(await exists(candidate))) continue;
    await mkdir(target, { recursive: true });
    await copyFile(candidate, join(target, file));
    return { ok: true, copiedFrom: candidate };
  }
  return { ok: false, reason: `no transcript for session ${sessionId} in ${configDir}` };
}
