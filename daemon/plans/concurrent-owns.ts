/**
 * The plan check on `owns`: two tasks that may run at the same time must not own a common
 * path. Globs are grouped by their literal leading characters (a trie): two globs can only
 * overlap when one's literal prefix is a prefix of the other's, so each glob is compared with
 * the globs on its own trie node and its ancestors, not with every glob of the plan; among
 * those, only with globs whose literal ending fits (a second trie), and pairs of different
 * fixed segment counts skip the automaton product.
 */
import { type GlobAlternative, type GlobToken, parseGlob } from "../tasks/index.js";
import type { Reachability } from "./graph.js";
import { alternativesOverlap } from "./overlap.js";

export interface ConcurrentOverlap {
  /** Task indexes, `a` before `b` in the document. */
  a: number;
  b: number;
  globA: string;
  globB: string;
  example: string;
}

interface Entry {
  task: number;
  glob: string;
  alt: GlobAlternative;
  /** Segments when the glob has no `**` (a path it matches has exactly that many), else -1. */
  length: number;
  /** The literal characters its last segment ends with ("" when that segment is `**`). */
  suffix: string;
}

interface TrieNode {
  entries: Entry[];
  children: Map<string, TrieNode>;
}

const literalChar = (t: GlobToken): string | undefined => {
  if (t.k === "star" || t.set.neg || t.set.ranges.length !== 1) return undefined;
  const [lo, hi] = t.set.ranges[0]!;
  return lo === hi ? String.fromCodePoint(lo) : undefined;
};

/**
 * The characters every path the alternative matches starts with, once a `/` is added at its end:
 * its plain leading segments, each followed by `/`, then the plain characters that start the
 * next segment. Two alternatives can only match a common path when one key is a prefix of the
 * other's (both are prefixes of that path plus `/`).
 */
function prefixKey(alt: GlobAlternative): string {
  let key = "";
  for (const seg of alt) {
    if (seg === "**") return key;
    for (const t of seg) {
      const c = literalChar(t);
      if (c === undefined) return key;
      key += c;
    }
    key += "/";
  }
  return key;
}

function entryOf(task: number, glob: string, alt: GlobAlternative): Entry {
  const last = alt[alt.length - 1]!;
  let suffix = "";
  if (last !== "**") {
    for (let i = last.length - 1; i >= 0; i--) {
      const c = literalChar(last[i]!);
      if (c === undefined) break;
      suffix = c + suffix;
    }
  }
  return {
    task,
    glob,
    alt,
    length: alt.includes("**") ? -1 : alt.length,
    suffix,
  };
}

/**
 * Entries by their literal ending, read backwards (a trie): the last segments of two globs
 * both match a path's last name, so one ending must be an ending of the other. `add` and
 * `remove` go in stack order.
 */
class SuffixIndex {
  private readonly root: TrieNode = { entries: [], children: new Map() };

  private path(suffix: string, create: boolean): TrieNode[] {
    const nodes = [this.root];
    let node = this.root;
    for (let i = suffix.length - 1; i >= 0; i--) {
      let next = node.children.get(suffix[i]!);
      if (!next) {
        if (!create) break;
        next = { entries: [], children: new Map() };
        node.children.set(suffix[i]!, next);
      }
      node = next;
      nodes.push(node);
    }
    return nodes;
  }

  add(e: Entry): void {
    this.path(e.suffix, true).at(-1)!.entries.push(e);
  }

  remove(e: Entry): void {
    this.path(e.suffix, false).at(-1)!.entries.pop();
  }

  /** Entries whose ending is an ending of `x`'s, or has `x`'s as its ending. */
  *candidates(x: Entry): Generator<Entry> {
    const nodes = this.path(x.suffix, false);
    for (const n of nodes) yield* n.entries;
    if (nodes.length !== x.suffix.length + 1) return;
    const below = [...nodes.at(-1)!.children.values()];
    while (below.length > 0) {
      const n = below.pop()!;
      yield* n.entries;
      below.push(...n.children.values());
    }
  }
}

/** The first pair of concurrent tasks whose owns overlap, or undefined. `owns[i]` normalised. */
export function findConcurrentOverlap(
  owns: readonly (readonly string[] | undefined)[],
  reach: Reachability,
): ConcurrentOverlap | undefined {
  const root: TrieNode = { entries: [], children: new Map() };
  owns.forEach((globs, task) => {
    for (const glob of globs ?? []) {
      for (const alt of parseGlob(glob)) {
        let node = root;
        for (const ch of prefixKey(alt)) {
          let next = node.children.get(ch);
          if (!next) {
            next = { entries: [], children: new Map() };
            node.children.set(ch, next);
          }
          node = next;
        }
        node.entries.push(entryOf(task, glob, alt));
      }
    }
  });
  const check = (x: Entry, y: Entry): ConcurrentOverlap | undefined => {
    if (x.length >= 0 && y.length >= 0 && x.length !== y.length) return undefined;
    if (!reach.concurrent(x.task, y.task)) return undefined;
    const example = alternativesOverlap(x.alt, y.alt);
    if (example === undefined) return undefined;
    const [first, second] = x.task < y.task ? [x, y] : [y, x];
    return { a: first.task, b: second.task, globA: first.glob, globB: second.glob, example };
  };
  // Depth first over the prefix trie; the entries of the ancestors (and of the node, so far)
  // sit in a suffix index, which yields only those whose literal ending fits.
  const visible = new SuffixIndex();
  const stack: Array<{ node: TrieNode; leave: boolean }> = [{ node: root, leave: false }];
  while (stack.length > 0) {
    const { node, leave } = stack.pop()!;
    if (leave) {
      for (let i = node.entries.length - 1; i >= 0; i--) visible.remove(node.entries[i]!);
      continue;
    }
    for (const x of node.entries) {
      for (const y of visible.candidates(x)) {
        const found = check(x, y);
        if (found) return found;
      }
      visible.add(x);
    }
    stack.push({ node, leave: true });
    for (const child of [...node.children.values()].reverse()) stack.push({ node: child, leave: false });
  }
  return undefined;
}
