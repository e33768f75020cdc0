/**
 * `owns`: the repository paths a task may write, as globs (`src/api/**`, `docs/*.md`). One
 * meaning everywhere: the plan check (overlap between concurrent tasks), the agent's
 * PreToolUse hook (agent-shim, which may not import daemon/) and the result-time gate all use
 * these functions; daemon/plans/owns.ts re-exports them with MeshError for the daemon. The
 * language itself is described in glob.ts.
 */
import { charSetHas, type GlobAlternative, type GlobToken, normaliseOwnsGlob, parseGlob } from "./glob.js";

export {
  ANY_CHAR,
  type CharSet,
  charSetHas,
  type GlobAlternative,
  type GlobSegment,
  type GlobToken,
  MAX_GLOB_EXPANSION,
  MAX_GLOB_LENGTH,
  MAX_OWNS,
  normaliseOwnsGlob,
  OwnsGlobError,
  parseGlob,
} from "./glob.js";

/** Whether one path segment (a non-empty name) matches one segment's tokens. */
export function segmentMatches(toks: readonly GlobToken[], name: string): boolean {
  const cps = Array.from(name, (ch) => ch.codePointAt(0)!);
  // Positions in `toks` reachable after each prefix of the name (a star may match nothing).
  let states = closure(toks, new Set([0]));
  for (const c of cps) {
    const next = new Set<number>();
    for (const i of states) {
      const t = toks[i];
      if (!t) continue;
      if (t.k === "star") {
        if (c !== 0x2f) next.add(i);
      } else if (charSetHas(t.set, c)) next.add(i + 1);
    }
    if (next.size === 0) return false;
    states = closure(toks, next);
  }
  return states.has(toks.length);
}

function closure(toks: readonly GlobToken[], states: Set<number>): Set<number> {
  for (const i of states) if (toks[i]?.k === "star") states.add(i + 1);
  return states;
}

/** Whether a clean repository path (`a/b.ts`: no empty, `.` or `..` segment) matches one alternative. */
export function alternativeMatches(alt: GlobAlternative, names: readonly string[]): boolean {
  const skip = (states: Set<number>): Set<number> => {
    for (const i of states) if (alt[i] === "**") states.add(i + 1);
    return states;
  };
  let states = skip(new Set([0]));
  for (const name of names) {
    const next = new Set<number>();
    for (const i of states) {
      const seg = alt[i];
      if (seg === undefined) continue;
      if (seg === "**") next.add(i);
      else if (segmentMatches(seg, name)) next.add(i + 1);
    }
    if (next.size === 0) return false;
    states = skip(next);
  }
  return states.has(alt.length);
}

/** The segments of a clean repository path, or undefined for one that is not clean. */
export function pathNames(relPath: string): string[] | undefined {
  if (typeof relPath !== "string" || relPath === "") return undefined;
  const names = relPath.split("/");
  return names.some((n) => n === "" || n === "." || n === "..") ? undefined : names;
}

/** A predicate over repository-relative paths (`a/b.ts`, no leading `./`); unclean paths never match. */
export type OwnsMatcher = (relPath: string) => boolean;

/** Normalises `globs` (throwing OwnsGlobError) and compiles them into one predicate. */
export function compileOwnsGlobs(globs: readonly string[]): OwnsMatcher {
  const alts = globs.flatMap((g) => parseGlob(normaliseOwnsGlob(g)));
  if (alts.length === 0) return () => false;
  return (p) => {
    const names = pathNames(p);
    return names !== undefined && alts.some((a) => alternativeMatches(a, names));
  };
}
