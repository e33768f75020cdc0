/**
 * The result-time ownership gate: the files an attempt changed (between its base and its head)
 * must lie inside its task's `owns`. The pure part lives here; the workspace feeds it
 * `git diff --name-only --no-renames base head` (a rename counts as both of its paths, a
 * deletion counts) and the attempt fails, or reports, by the spec's `ownsViolation`.
 */
import { MeshError } from "../errors.js";
import { compileOwns } from "./owns.js";

/** Paths a failure reason lists before "and N more". */
export const MAX_LISTED_VIOLATIONS = 20;
/** Paths a record keeps of a reported violation (the rest are counted). */
export const MAX_RECORDED_VIOLATIONS = 100;
const MAX_RECORDED_BYTES = 16 * 1024;

/** The changed paths outside `owns`, sorted, each once. */
export function ownsViolations(changed: readonly string[], owns: readonly string[]): string[] {
  const owned = compileOwns(owns);
  return [...new Set(changed)].filter((p) => !owned(p)).sort();
}

/** One line: what was changed outside `owns`, up to MAX_LISTED_VIOLATIONS paths then "and N more". */
export function describeOwnsViolations(paths: readonly string[], owns: readonly string[]): string {
  const shown = paths.slice(0, MAX_LISTED_VIOLATIONS).join(", ");
  const more =
    paths.length > MAX_LISTED_VIOLATIONS ? ` and ${paths.length - MAX_LISTED_VIOLATIONS} more` : "";
  const n = paths.length === 1 ? "1 file" : `${paths.length} files`;
  const ownsText = owns.length === 0 ? "(none)" : owns.join(", ");
  return `changed ${n} outside owns [${ownsText}]: ${shown}${more}`;
}

/** What a record keeps of a reported violation: the first paths (bounded) and how many were left out. */
export function recordedViolations(paths: readonly string[]): { paths: string[]; omitted: number } {
  const kept: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    if (kept.length >= MAX_RECORDED_VIOLATIONS || bytes + p.length > MAX_RECORDED_BYTES) break;
    kept.push(p);
    bytes += p.length;
  }
  return { paths: kept, omitted: paths.length - kept.length };
}

/** An attempt changed files outside its `owns` under `ownsViolation: fail`: it fails for good. */
export class OwnsViolationError extends MeshError {
  override name = "MeshError";
  constructor(
    readonly paths: readonly string[],
    owns: readonly string[],
  ) {
    super("FAILED_PRECONDITION", describeOwnsViolations(paths, owns), { field: "owns" });
  }
}
