/**
 * `owns` overlap is decided on the glob language: property tests against the matcher
 * (compileOwns) that the hook and the gate use. An example the overlap gives must match both
 * globs; when it says "no overlap", no path drawn from one glob may match the other.
 */
import fc from "fast-check";
import picomatch from "picomatch";
import { describe, expect, it } from "vitest";
import { compileOwns, globsOverlap, normaliseGlob, ownsOverlap } from "../daemon/plans/index.js";

// A small alphabet so that random globs overlap often enough to test both answers.
const litChar = fc.constantFrom("a", "b", ".", "c");
const token = fc.oneof(
  { weight: 5, arbitrary: litChar },
  { weight: 2, arbitrary: fc.constant("*") },
  { weight: 1, arbitrary: fc.constant("?") },
  { weight: 1, arbitrary: fc.constantFrom("[ab]", "[!a]", "[a-b]", "[.c]", "[^.]") },
);
const namePart = fc.array(token, { minLength: 1, maxLength: 4 }).map((t) => t.join(""));
const segment = fc.oneof(
  { weight: 6, arbitrary: namePart },
  { weight: 2, arbitrary: fc.constant("**") },
  {
    weight: 1,
    arbitrary: fc.tuple(namePart, namePart).map(([x, y]) => `{${x},${y}}`),
  },
);
const rawGlob = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
/** Globs that normalise (a few random ones are `.`-only or otherwise refused). */
const glob = rawGlob
  .map((g) => {
    try {
      return normaliseGlob(g);
    } catch {
      return undefined;
    }
  })
  .filter((g): g is string => g !== undefined);

const nameChar = fc.constantFrom("a", "b", "c", ".", "x");
const name = fc
  .array(nameChar, { minLength: 1, maxLength: 4 })
  .map((c) => c.join(""))
  .filter((n) => n !== "." && n !== "..");
const path = fc.array(name, { minLength: 1, maxLength: 5 }).map((s) => s.join("/"));

const CASES = { numRuns: 3000 };

/** Paths that match `g`, built from its text (a star or ** takes a random few). */
function pathsOf(g: string, rnd: () => number): string[] {
  const alts = picomatch.scan(g).glob.includes("{") ? expand(g) : [g];
  return alts.map((alt) => {
    const out: string[] = [];
    for (const seg of alt.split("/")) {
      if (seg === "**") {
        for (let k = Math.floor(rnd() * 3); k > 0; k--) out.push(["a", "b.c", ".x"][Math.floor(rnd() * 3)]!);
        continue;
      }
      let n = "";
      for (let i = 0; i < seg.length; i++) {
        const ch = seg[i]!;
        if (ch === "*") for (let k = Math.floor(rnd() * 3); k > 0; k--) n += "abc."[Math.floor(rnd() * 4)];
        else if (ch === "?") n += "abcx."[Math.floor(rnd() * 5)];
        else if (ch === "[") {
          const end = seg.indexOf("]", i + 2);
          const cls = seg.slice(i, end + 1);
          const fits = Array.from("abcx.").filter((c) => picomatch.isMatch(c, cls, { dot: true }));
          n += fits[Math.floor(rnd() * fits.length)] ?? "a";
          i = end;
        } else n += ch;
      }
      out.push(n);
    }
    return out.join("/");
  });
}

function expand(g: string): string[] {
  const m = /\{([^{}]*)\}/.exec(g);
  if (!m) return [g];
  return m[1]!
    .split(",")
    .flatMap((alt) => expand(g.slice(0, m.index) + alt + g.slice(m.index + m[0].length)));
}

describe("globsOverlap", () => {
  it("gives an example that both globs match", () => {
    fc.assert(
      fc.property(glob, glob, (a, b) => {
        const e = globsOverlap(a, b);
        if (e === undefined) return;
        expect(compileOwns([a])(e), `${a} should match ${e}`).toBe(true);
        expect(compileOwns([b])(e), `${b} should match ${e}`).toBe(true);
      }),
      CASES,
    );
  });

  it("says no overlap only when no random path matches both", () => {
    fc.assert(
      fc.property(glob, glob, fc.array(path, { minLength: 20, maxLength: 20 }), (a, b, paths) => {
        if (globsOverlap(a, b) !== undefined) return;
        const ma = compileOwns([a]);
        const mb = compileOwns([b]);
        for (const p of paths) expect(ma(p) && mb(p), `${p} matches both ${a} and ${b}`).toBe(false);
      }),
      CASES,
    );
  });

  it("says no overlap only when no path drawn from one glob matches the other", () => {
    fc.assert(
      fc.property(glob, glob, fc.integer({ min: 1, max: 2 ** 30 }), (a, b, seed) => {
        let s = seed;
        const rnd = () => {
          s = (s * 1103515245 + 12345) % 2 ** 31;
          return s / 2 ** 31;
        };
        const ma = compileOwns([a]);
        const mb = compileOwns([b]);
        const overlap = globsOverlap(a, b);
        for (let k = 0; k < 5; k++) {
          for (const p of [...pathsOf(a, rnd), ...pathsOf(b, rnd)]) {
            if (ma(p) && mb(p)) expect(overlap, `${p} matches both ${a} and ${b}`).toBeDefined();
          }
        }
      }),
      CASES,
    );
  });

  it("is symmetric in whether the globs overlap", () => {
    fc.assert(
      fc.property(glob, glob, (a, b) => {
        expect(globsOverlap(a, b) === undefined).toBe(globsOverlap(b, a) === undefined);
      }),
      CASES,
    );
  });

  it("matches as picomatch does (dot: true) on brace-free globs", () => {
    fc.assert(
      fc.property(glob, path, (g, p) => {
        // Where picomatch is not uniform, owns are: `[!a]*` matches `a` there, and a trailing
        // `/**` matches nothing after a wildcard segment (`*/**` misses `a`, `a/**` matches `a`).
        if (g.includes("{") || g.includes("[!") || /(^|\/)[^/]*[*?[][^/]*\/\*\*$/.test(g)) return;
        expect(compileOwns([g])(p), `${g} on ${p}`).toBe(picomatch.isMatch(p, g, { dot: true }));
      }),
      CASES,
    );
  });

  it.each([
    ["src/**", "src/api/*.ts", "src/api/a.ts"],
    ["**/*.md", "docs/**", "docs/a.md"],
    ["a/**", "a", "a"],
    ["*.{ts,js}", "x.js", "x.js"],
    ["{a,b}/c", "b/*", "b/c"],
    ["**", "**", "a"],
    ["a/**/b", "a/b", "a/b"],
    [".*", "*", ".a"],
  ])("%s and %s overlap (e.g. %s)", (a, b, example) => {
    const e = globsOverlap(normaliseGlob(a), normaliseGlob(b));
    expect(e).toBeDefined();
    expect(compileOwns([a])(e!) && compileOwns([b])(e!)).toBe(true);
    expect(compileOwns([a])(example) && compileOwns([b])(example)).toBe(true);
  });

  it.each([
    ["src/a*", "src/b*"],
    ["a/*/c", "a/**/d"],
    ["db/**", "src/**"],
    ["src/*.ts", "src/*/x.ts"],
    ["[ab]x", "[!ab]x"],
    ["a/b", "a/b/c"],
    ["*.ts", "*.js"],
    ["**/.env", "**/env"],
  ])("%s and %s do not overlap", (a, b) => {
    expect(globsOverlap(normaliseGlob(a), normaliseGlob(b))).toBeUndefined();
  });

  it("finds the overlapping pair of two owns lists", () => {
    expect(ownsOverlap(["db/**", "docs/*.md"], ["src/**", "docs/{api,db}.md"])).toEqual({
      a: "docs/*.md",
      b: "docs/{api,db}.md",
      example: "docs/api.md",
    });
    expect(ownsOverlap(["db/**"], ["src/**", "docs/**"])).toBeUndefined();
  });
});

describe("normaliseGlob", () => {
  it.each([
    ["./a//b/", "a/b/**"],
    ["a/**/**/b", "a/**/b"],
    ["src/", "src/**"],
    ["{a,{b,c}}/", "{a,{b,c}}/**"],
  ])("writes %s as %s", (g, want) => {
    expect(normaliseGlob(g)).toBe(want);
  });

  it.each([
    ["a**b", "glues ** to other text"],
    ["**.ts", "glues ** to other text"],
    ["***", "write ** for any number of folders"],
    ["{a,}", "empty alternative"],
    ["{}", "empty alternative"],
    ["[a", '"[" without its "]"'],
    ["a]", '"]" without its "["'],
    ["{a", '"{" without its "}"'],
    ["a}", '"}" without its "{"'],
    ["[b-a]", "reversed range b-a"],
    ["[[:alpha:]]", "POSIX class"],
    ["a[/]b", 'class never holds "/"'],
    ["../x", 'holds ".."'],
    ["a/../../b", 'holds ".."'],
    ["{..,a}/x", 'holds ".."'],
    ["/etc/passwd", "is absolute"],
    ["~/x", "starts with ~"],
    ["!src/**", "cannot be negated"],
    ["a\\*", 'holds "\\"'],
    [".", "names no path"],
    ["", "is empty"],
  ])("refuses %s (%s)", (g, why) => {
    let err: unknown;
    try {
      normaliseGlob(g, "tasks[0].owns[1]");
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: "MeshError", code: "INVALID_ARGUMENT", field: "tasks[0].owns[1]" });
    expect((err as Error).message).toContain(why);
    expect((err as Error).message).toContain("tasks[0].owns[1]");
  });

  it("is idempotent (a stored spec's owns validate again to themselves)", () => {
    fc.assert(
      fc.property(fc.oneof(rawGlob, rawGlob.map((g) => `./${g}/`)), (g) => {
        let n: string;
        try {
          n = normaliseGlob(g);
        } catch {
          return;
        }
        expect(normaliseGlob(n)).toBe(n);
      }),
      CASES,
    );
  });

  it("refuses a brace bomb", () => {
    expect(() => normaliseGlob("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")).toThrow(
      /more than 256 globs/,
    );
  });

  it("never matches unclean paths", () => {
    const m = compileOwns(["**"]);
    for (const p of ["", "a//b", "./a", "a/../b", "/a", "a/"]) expect(m(p), p).toBe(false);
    expect(m(".env")).toBe(true);
  });
});
