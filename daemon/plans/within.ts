/**
 * Whether one `owns` glob lies inside others: what a delegating agent may hand on (a child's
 * owns must lie inside its parent's). Decided conservatively on the globs, never on the files
 * that exist: `child` lies inside `parents` when it equals one of them, when it is a literal path
 * one of them matches, or when one of them is `<dir>/**` and `child` starts with `<dir>/` literally
 * (its later segments may hold wildcards). Anything else is refused: the agent is told to pick a
 * path under its own globs.
 */
import { compileOwns, normaliseGlob } from "./owns.js";

const WILD = /[*?[\]{}!()+@]/;

/** The glob's leading segments that hold no wildcard. */
function literalPrefix(glob: string): string[] {
  const out: string[] = [];
  for (const s of glob.split("/")) {
    if (WILD.test(s)) break;
    out.push(s);
  }
  return out;
}

export function globWithin(child: string, parents: readonly string[]): boolean {
  const c = normaliseGlob(child);
  const ps = parents.map((p) => normaliseGlob(p));
  if (ps.includes(c)) return true;
  if (!WILD.test(c)) return compileOwns(ps)(c);
  const cSegs = c.split("/");
  return ps.some((p) => {
    const pSegs = p.split("/");
    if (pSegs[pSegs.length - 1] !== "**") return false;
    const dir = pSegs.slice(0, -1);
    if (dir.some((s) => WILD.test(s))) return false;
    const lit = literalPrefix(c);
    return lit.length >= dir.length && dir.every((s, i) => cSegs[i] === s) && cSegs.length > dir.length;
  });
}

/** The first of `children` that does not lie inside `parents`, or undefined. */
export function ownsOutside(children: readonly string[], parents: readonly string[]): string | undefined {
  return children.find((c) => !globWithin(c, parents));
}
