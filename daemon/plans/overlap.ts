/**
 * Whether two `owns` globs can match the same path, decided on the globs themselves (never on
 * the files that exist): a breadth-first search of the product of their automata, over path
 * segments and, inside a segment, over characters. When they overlap it returns a shortest
 * path both match, as the example an error shows.
 */
import {
  ANY_CHAR,
  type CharSet,
  charSetHas,
  type GlobAlternative,
  type GlobToken,
  parseGlob,
} from "../tasks/index.js";

/** Characters an example prefers, so that examples read like paths. */
const PREFERRED = Array.from(
  "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_-",
  (c) => c.codePointAt(0)!,
);
/** Never in an example: control characters, `/`, lone surrogates. */
const EXCLUDED: ReadonlyArray<readonly [number, number]> = [
  [0, 0x1f],
  [0x2f, 0x2f],
  [0x7f, 0x7f],
  [0xd800, 0xdfff],
];
const DOT = 0x2e;
const MAX_CP = 0x10ffff;

const allowed = (c: number, sets: readonly CharSet[]): boolean =>
  c >= 0 &&
  c <= MAX_CP &&
  !EXCLUDED.some(([lo, hi]) => c >= lo && c <= hi) &&
  sets.every((s) => charSetHas(s, c));

/**
 * A character in every set, not `.` (the dot is tried on its own), or undefined. Complete: the
 * smallest member of each interval of the intersection is a range's low end, or one past a
 * range's high end, or one past an excluded block, and all of those are tried.
 */
function pickChar(sets: readonly CharSet[]): number | undefined {
  for (const c of PREFERRED) if (allowed(c, sets)) return c;
  const cands = [0x20, DOT + 1];
  for (const [, hi] of EXCLUDED) cands.push(hi + 1);
  for (const s of sets) for (const [lo, hi] of s.ranges) cands.push(lo, hi + 1);
  for (const c of cands) if (c !== DOT && allowed(c, sets)) return c;
  return undefined;
}

/** What the name read so far is: empty, ".", "..", or a real name (only the last may end a segment). */
type NameState = 0 | 1 | 2 | 3;
const afterDot = (d: NameState): NameState => (d === 3 ? 3 : ((d + 1) as NameState));

function closeStars(toks: readonly GlobToken[], i: number): number[] {
  const out = [i];
  while (toks[i]?.k === "star") out.push(++i);
  return out;
}

/**
 * A name (a non-empty segment, not `.` or `..`) both segments match, or undefined. Of the
 * shortest, one that does not start with a dot when there is one (`a.md` rather than `.md`).
 */
export function segmentsOverlap(a: readonly GlobToken[], b: readonly GlobToken[]): string | undefined {
  return searchName(a, b, true) ?? searchName(a, b, false);
}

function searchName(
  a: readonly GlobToken[],
  b: readonly GlobToken[],
  noLeadingDot: boolean,
): string | undefined {
  const key = (i: number, j: number, d: number) => (i * (b.length + 1) + j) * 4 + d;
  const prev = new Map<number, { from: number; c: number } | null>();
  const queue: Array<[number, number, NameState]> = [[0, 0, 0]];
  prev.set(key(0, 0, 0), null);
  for (let q = 0; q < queue.length; q++) {
    const [i0, j0, d] = queue[q]!;
    const here = key(i0, j0, d);
    const is = closeStars(a, i0);
    const js = closeStars(b, j0);
    if (d === 3 && is.includes(a.length) && js.includes(b.length)) return spell(prev, here);
    for (const i of is) {
      const ta = a[i];
      if (!ta) continue;
      for (const j of js) {
        const tb = b[j];
        if (!tb) continue;
        const sets = [ta.k === "star" ? ANY_CHAR : ta.set, tb.k === "star" ? ANY_CHAR : tb.set];
        const ni = ta.k === "star" ? i : i + 1;
        const nj = tb.k === "star" ? j : j + 1;
        // A letter before a dot: of two shortest examples, the one that reads like a name.
        const steps: Array<[number, NameState]> = [];
        const c = pickChar(sets);
        if (c !== undefined) steps.push([c, 3]);
        if (!(noLeadingDot && d === 0) && sets.every((s) => charSetHas(s, DOT)))
          steps.push([DOT, afterDot(d)]);
        for (const [ch, nd] of steps) {
          const k = key(ni, nj, nd);
          if (prev.has(k)) continue;
          prev.set(k, { from: here, c: ch });
          queue.push([ni, nj, nd]);
        }
      }
    }
  }
  return undefined;
}

function spell(prev: Map<number, { from: number; c: number } | null>, end: number): string {
  const cps: number[] = [];
  for (let at = prev.get(end); at; at = prev.get(at.from)) cps.push(at.c);
  return String.fromCodePoint(...cps.reverse());
}

const ANY_NAME: readonly GlobToken[] = [{ k: "star" }];

/** A path both brace-free alternatives match, or undefined. */
export function alternativesOverlap(a: GlobAlternative, b: GlobAlternative): string | undefined {
  const W = b.length + 1;
  const key = (i: number, j: number, c: number) => (i * W + j) * 2 + c;
  const prev = new Map<number, { from: number; name: string } | null>();
  const names = new Map<string, string | undefined>();
  const nameFor = (i: number, j: number): string | undefined => {
    const k = `${i}/${j}`;
    if (!names.has(k)) {
      const sa = a[i]!;
      const sb = b[j]!;
      names.set(k, segmentsOverlap(sa === "**" ? ANY_NAME : sa, sb === "**" ? ANY_NAME : sb));
    }
    return names.get(k);
  };
  const skip = (alt: GlobAlternative, i: number): number[] => {
    const out = [i];
    while (alt[i] === "**") out.push(++i);
    return out;
  };
  const queue: Array<[number, number, number]> = [[0, 0, 0]];
  prev.set(key(0, 0, 0), null);
  for (let q = 0; q < queue.length; q++) {
    const [i0, j0, c] = queue[q]!;
    const here = key(i0, j0, c);
    const is = skip(a, i0);
    const js = skip(b, j0);
    if (c === 1 && is.includes(a.length) && js.includes(b.length)) {
      const out: string[] = [];
      for (let at = prev.get(here); at; at = prev.get(at.from)) out.push(at.name);
      return out.reverse().join("/");
    }
    for (const i of is) {
      if (i >= a.length) continue;
      for (const j of js) {
        if (j >= b.length) continue;
        const name = nameFor(i, j);
        if (name === undefined) continue;
        const k = key(a[i] === "**" ? i : i + 1, b[j] === "**" ? j : j + 1, 1);
        if (prev.has(k)) continue;
        prev.set(k, { from: here, name });
        queue.push([a[i] === "**" ? i : i + 1, b[j] === "**" ? j : j + 1, 1]);
      }
    }
  }
  return undefined;
}

/** An example path matched by both normalised globs, or undefined when no path matches both. */
export function globsOverlap(a: string, b: string): string | undefined {
  for (const x of parseGlob(a)) {
    for (const y of parseGlob(b)) {
      const p = alternativesOverlap(x, y);
      if (p !== undefined) return p;
    }
  }
  return undefined;
}

export interface OwnsOverlap {
  a: string;
  b: string;
  example: string;
}

/** The first pair of globs (one of each list) that can match the same path, with an example. */
export function ownsOverlap(a: readonly string[], b: readonly string[]): OwnsOverlap | undefined {
  for (const x of a) {
    for (const y of b) {
      const example = globsOverlap(x, y);
      if (example !== undefined) return { a: x, b: y, example };
    }
  }
  return undefined;
}
