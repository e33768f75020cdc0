/**
 * `owns`: the repository paths a task may write, as globs (`src/api/**`, `docs/*.md`). One
 * meaning everywhere: the plan check (overlap between concurrent tasks), the agent's
 * PreToolUse hook and the result-time gate all use these functions.
 *
 * Globs are repository-relative, `/`-separated, case-sensitive; `*` and `?` never cross a `/`,
 * `**` as a whole segment matches any number of segments, `[...]` and `{a,b}` as in picomatch.
 * Dotfiles are matched like any other file (an agent writing `.env` is a write).
 */
import picomatch from "picomatch";
import { MeshError } from "../errors.js";

export const MAX_OWNS = 256;
export const MAX_GLOB_LENGTH = 512;

/**
 * The glob in its one written form (`./a//b/` -> `a/b`, a trailing `/` means the whole
 * directory: `a/b/**`). Throws INVALID_ARGUMENT with `field` for a glob that escapes the
 * repository (`..` segments, absolute paths, `~`) or is malformed.
 */
export function normaliseGlob(glob: string, field = "owns"): string {
  const bad = (why: string): never => {
    throw new MeshError("INVALID_ARGUMENT", `${field}: "${glob}" ${why}`, { field });
  };
  if (typeof glob !== "string" || glob.length === 0) bad("is empty");
  if (glob.length > MAX_GLOB_LENGTH) bad(`is longer than ${MAX_GLOB_LENGTH} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\u0000-\u001f\u007f]/.test(glob)) bad("holds control characters");
  if (glob.includes("\\")) bad('holds "\\": write paths with "/"');
  if (glob.startsWith("/")) bad("is absolute: owns are paths inside the repository, e.g. src/**");
  if (glob.startsWith("~")) bad("starts with ~: owns are paths inside the repository, e.g. src/**");
  let g = glob;
  const dir = g.endsWith("/");
  const segs = g.split("/").filter((s) => s !== "" && s !== ".");
  if (segs.length === 0) bad("names no path");
  if (segs.some((s) => s === "..")) bad('holds "..": owns cannot reach outside the repository');
  if (dir) segs.push("**");
  // Collapse runs of `**` (`a/**/**/b` is `a/**/b`).
  const out: string[] = [];
  for (const s of segs) if (!(s === "**" && out[out.length - 1] === "**")) out.push(s);
  g = out.join("/");
  try {
    picomatch.makeRe(g, { dot: true, strictBrackets: true });
  } catch (err) {
    bad(`is not a valid glob (${err instanceof Error ? err.message : String(err)})`);
  }
  return g;
}

/** A predicate over repository-relative paths (`a/b.ts`, no leading `./`). */
export type OwnsMatcher = (relPath: string) => boolean;

export function compileOwns(globs: readonly string[]): OwnsMatcher {
  const norm = globs.map((g) => normaliseGlob(g));
  if (norm.length === 0) return () => false;
  const m = picomatch(norm, { dot: true, strictBrackets: true });
  return (p) => m(p);
}
