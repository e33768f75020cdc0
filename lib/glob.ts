/**
 * The glob language of `owns`, parsed once into segments so that matching (lib/owns.ts: the
 * daemon's gate and the agent's hook) and overlap (daemon/plans/overlap.ts) read the same
 * structure and cannot disagree.
 *
 * - Repository-relative, `/`-separated, case-sensitive, compared by code point.
 * - `*` any run of characters inside one segment (also none); `?` one character; neither
 *   crosses a `/`. Dotfiles are files like any other: `*` matches `.env`.
 * - `**` as a whole segment: any number of segments, also none (`a/**` matches `a` too).
 *   Glued to text (`a**`, `**.ts`) it is refused: write `a*` or `** /*.ts` without the space.
 * - `[abc]`, `[a-z]`, `[!x]` / `[^x]`: one character of (not of) the set, never `/`. A `]`
 *   right after `[` or `[!` is a member. POSIX classes (`[:alpha:]`) are refused.
 * - `{a,b}` alternatives, nested allowed, may hold `/`; expanded before anything else.
 *   Empty alternatives (`{a,}`, `{}`) are refused.
 * - No escapes (`\` is refused), no negation (a leading `!` is refused), no extglobs:
 *   `(`, `)`, `+`, `@`, `!` elsewhere are plain characters.
 */

export const MAX_GLOB_LENGTH = 512;
/** How many globs one task's `owns` may list. */
export const MAX_OWNS = 256;
/** How many globs one glob may expand to through its braces. */
export const MAX_GLOB_EXPANSION = 256;

/** A set of code points; `neg` means every code point except `ranges`. `/` is never a member. */
export interface CharSet {
  neg: boolean;
  ranges: ReadonlyArray<readonly [number, number]>;
}
export type GlobToken = { k: "char"; set: CharSet } | { k: "star" };
/** `**`, or one segment's tokens. */
export type GlobSegment = "**" | readonly GlobToken[];
/** One brace-free alternative: its segments. */
export type GlobAlternative = readonly GlobSegment[];

export const ANY_CHAR: CharSet = { neg: true, ranges: [] };
const SLASH = 0x2f;

export function charSetHas(set: CharSet, c: number): boolean {
  if (c === SLASH) return false;
  let inside = false;
  for (const [lo, hi] of set.ranges) {
    if (c >= lo && c <= hi) {
      inside = true;
      break;
    }
  }
  return inside !== set.neg;
}

class GlobSyntaxError extends Error {}
const fail = (why: string): never => {
  throw new GlobSyntaxError(why);
};

/** Splits on the top-level commas of a brace body; returns the alternatives and the index after `}`. */
function braceBody(s: string, open: number): { alts: string[]; end: number } {
  const alts: string[] = [];
  let depth = 0;
  let start = open + 1;
  let inClass = false;
  for (let i = open + 1; i < s.length; i++) {
    const ch = s[i];
    if (inClass) {
      if (ch === "]" && !classStartsAt(s, i)) inClass = false;
      continue;
    }
    if (ch === "[") inClass = true;
    else if (ch === "{") depth++;
    else if (ch === "}" && depth > 0) depth--;
    else if (ch === "}" || (ch === "," && depth === 0)) {
      alts.push(s.slice(start, i));
      start = i + 1;
      if (ch === "}") return { alts, end: i + 1 };
    }
  }
  return fail('has a "{" without its "}"');
}

/** Whether the `]` at `i` is the first member of a class (so not its end). */
function classStartsAt(s: string, i: number): boolean {
  const prev = s[i - 1];
  if (prev === "[") return true;
  return (prev === "!" || prev === "^") && s[i - 2] === "[" && s[i - 3] !== "[";
}

/** Every brace-free form of `s` (`a{b,c}d` -> `abd`, `acd`). */
function expandBraces(s: string): string[] {
  let inClass = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (inClass) {
      if (ch === "]" && !classStartsAt(s, i)) inClass = false;
      continue;
    }
    if (ch === "[") inClass = true;
    else if (ch === "}") fail('has a "}" without its "{"');
    else if (ch === "{") {
      const { alts, end } = braceBody(s, i);
      if (alts.some((a) => a === "")) fail("has an empty alternative in {...}; write {a,b}");
      const head = s.slice(0, i);
      const tails = expandBraces(s.slice(end));
      const out: string[] = [];
      for (const alt of alts) {
        for (const a of expandBraces(alt)) {
          for (const t of tails) {
            out.push(head + a + t);
            if (out.length > MAX_GLOB_EXPANSION) {
              fail(`expands to more than ${MAX_GLOB_EXPANSION} globs through its braces`);
            }
          }
        }
      }
      return out;
    }
  }
  return [s];
}

function parseClass(cps: number[], open: number): { set: CharSet; end: number } {
  let i = open + 1;
  let neg = false;
  if (cps[i] === 0x21 || cps[i] === 0x5e) {
    neg = true;
    i++;
  }
  const members: number[] = [];
  const first = i;
  for (; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === 0x5d && i > first) break; // ]
    if (c === SLASH) fail('holds "/" inside [...]: a class matches one character of a name');
    if (c === 0x5b && cps[i + 1] === 0x3a) fail("uses a POSIX class like [:alpha:]; write [a-zA-Z]");
    members.push(c);
  }
  if (i >= cps.length) fail('has a "[" without its "]" in the same segment (a [...] class never holds "/")');
  const ranges: Array<[number, number]> = [];
  for (let m = 0; m < members.length; m++) {
    const lo = members[m]!;
    if (members[m + 1] === 0x2d && m + 2 < members.length) {
      const hi = members[m + 2]!;
      if (hi < lo) {
        fail(`has the reversed range ${String.fromCodePoint(lo)}-${String.fromCodePoint(hi)} in [...]`);
      }
      ranges.push([lo, hi]);
      m += 2;
    } else ranges.push([lo, lo]);
  }
  return { set: { neg, ranges }, end: i + 1 };
}

function parseSegment(seg: string): GlobSegment {
  if (seg === "**") return "**";
  if (/^\*{3,}$/.test(seg)) fail(`has "${seg}": write ** for any number of folders`);
  const cps = Array.from(seg, (ch) => ch.codePointAt(0)!);
  const toks: GlobToken[] = [];
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (c === 0x2a) {
      if (cps[i + 1] === 0x2a) {
        fail(
          `glues ** to other text in "${seg}": ** stands alone between slashes (a/**/b); use * inside a name`,
        );
      }
      toks.push({ k: "star" });
    } else if (c === 0x3f) toks.push({ k: "char", set: ANY_CHAR });
    else if (c === 0x5b) {
      const { set, end } = parseClass(cps, i);
      toks.push({ k: "char", set });
      i = end - 1;
    } else if (c === 0x5d) fail('has a "]" without its "["');
    else toks.push({ k: "char", set: { neg: false, ranges: [[c, c]] } });
  }
  return toks;
}

/** `a/./b//c` -> segments `a b c`; refuses `..`; collapses runs of `**`. */
function cleanSegments(text: string, dirMarker: boolean): string[] {
  const segs = text.split("/").filter((s) => s !== "" && s !== ".");
  if (segs.length === 0) fail("names no path");
  if (segs.includes("..")) fail('holds "..": owns cannot reach outside the repository');
  if (dirMarker) segs.push("**");
  const out: string[] = [];
  for (const s of segs) if (!(s === "**" && out[out.length - 1] === "**")) out.push(s);
  return out;
}

const parsed = new Map<string, GlobAlternative[]>();

/** The brace-free alternatives of a normalised glob, parsed (memoised). */
export function parseGlob(glob: string): GlobAlternative[] {
  let alts = parsed.get(glob);
  if (!alts) {
    alts = expandBraces(glob).map((alt) => cleanSegments(alt, alt.endsWith("/")).map(parseSegment));
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(glob, alts);
  }
  return alts;
}

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
 * The glob in its one written form (`./a//b/` -> `a/b/**`: a trailing `/` means the whole
 * folder). Throws OwnsGlobError for a glob that escapes the repository (`..` segments,
 * absolute paths, `~`) or is malformed, saying why (daemon/tasks turns it into MeshError
 * INVALID_ARGUMENT naming the field).
 */
export function normaliseOwnsGlob(glob: string): string {
  const bad = (why: string): never => {
    throw new OwnsGlobError(String(glob), why);
  };
  if (typeof glob !== "string" || glob.length === 0) return bad("is empty");
  if (glob.length > MAX_GLOB_LENGTH) bad(`is longer than ${MAX_GLOB_LENGTH} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\u0000-\u001f\u007f]/.test(glob)) bad("holds control characters");
  if (glob.includes("\\")) bad('holds "\\": write paths with "/" (there are no escapes)');
  if (glob.startsWith("/")) bad("is absolute: owns are paths inside the repository, e.g. src/**");
  if (glob.startsWith("~")) bad("starts with ~: owns are paths inside the repository, e.g. src/**");
  if (glob.startsWith("!")) bad("starts with !: owns cannot be negated; list what the task writes");
  try {
    const g = cleanSegments(glob, glob.endsWith("/")).join("/");
    parseGlob(g);
    return g;
  } catch (err) {
    if (err instanceof GlobSyntaxError) return bad(err.message);
    throw err;
  }
}
