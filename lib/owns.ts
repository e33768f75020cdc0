/**
 * `owns`: the repository paths a task may write, as globs (`src/api/**`, `docs/*.md`). One
 * meaning everywhere: the plan check (overlap between concurrent tasks), the agent's
 * PreToolUse hook (agent-shim, which may not import daemon/) and the result-time gate all use
 * these functions; daemon/plans/owns.ts re-exports them with MeshError for the daemon.
 *
 * Globs are repository-relative, `/`-separated, case-sensitive; `*` and `?` never cross a `/`,
 * `**` as a whole segment matches any number of segments, `[...]` and `{a,b}` as in picomatch.
 * Dotfiles are matched like any other file (an agent writing `.env` is a write).
 */
import picomatch from "picomatch";

export const MAX_OWNS = 256;
export const MAX_GLOB_LENGTH = 512;

const PM_OPTIONS = { dot: true, strictBrackets: true } as const;

/** A glob that cannot be an `owns` entry; `why` completes the sentence `"<glob>" <why>`. */
export class OwnsGlobError extends Error {
  override name = "OwnsGlobError";
  constructor(
    readonly glob: string,
    readonly why: string,
  ) {
    super(`"${glob}" ${why}`);
  }
}

/**
 * The glob in its one written form (`./a//b/` -> `a/b`, a trailing `/` means the whole
 * directory: `a/b/**`). Throws OwnsGlobError for a glob that escapes the repository (`..`
 * segments, absolute paths, `~`) or is malformed.
 */
export function normaliseOwnsGlob(glob: string): string {
  const bad = (why: string): never => {
    throw new OwnsGlobError(String(glob), why);
  };
  if (typeof glob !== "string" || glob.length === 0) bad("is empty");
  if (glob.length > MAX_GLOB_LENGTH) bad(`is longer than ${MAX_GLOB_LENGTH} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\u0000-\u001f\u007f]/.test(glob)) bad("holds control characters");
  if (glob.includes("\\")) bad('holds "\\": write paths with "/"');
  if (glob.startsWith("/")) bad("is absolute: owns are paths inside the repository, e.g. src/**");
  if (glob.startsWith("~")) bad("starts with ~: owns are paths inside the repository, e.g. src/**");
  const dir = glob.endsWith("/");
  const segs = glob.split("/").filter((s) => s !== "" && s !== ".");
  if (segs.length === 0) bad("names no path");
  if (segs.some((s) => s === "..")) bad('holds "..": owns cannot reach outside the repository');
  if (dir) segs.push("**");
  // Collapse runs of `**` (`a/**/**/b` is `a/**/b`).
  const out: string[] = [];
  for (const s of segs) if (!(s === "**" && out[out.length - 1] === "**")) out.push(s);
  const g = out.join("/");
  try {
    picomatch.makeRe(g, PM_OPTIONS);
  } catch (err) {
    bad(`is not a valid glob (${err instanceof Error ? err.message : String(err)})`);
  }
  return g;
}

/** A predicate over repository-relative paths (`a/b.ts`, no leading `./`). */
export type OwnsMatcher = (relPath: string) => boolean;

/** Normalises `globs` (throwing OwnsGlobError) and compiles them into one predicate. */
export function compileOwnsGlobs(globs: readonly string[]): OwnsMatcher {
  const norm = globs.map((g) => normaliseOwnsGlob(g));
  if (norm.length === 0) return () => false;
  const m = picomatch(norm, PM_OPTIONS);
  return (p) => m(p);
}
