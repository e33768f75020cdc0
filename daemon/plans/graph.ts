/**
 * The needs graph of a plan, by task index: a topological order (dependencies first), a cycle
 * with its path when there is one, and who reaches whom (ancestor bitsets) so that "may these
 * two run at the same time" is one lookup, for plans of thousands of tasks.
 */

/** `needs[i]`: the indexes task i needs. */
export type NeedsGraph = readonly (readonly number[])[];

/** Kahn's order, ties in document order; `undefined` when a cycle leaves tasks unordered. */
export function topologicalOrder(needs: NeedsGraph): number[] | undefined {
  const order = partialOrder(needs);
  return order.length === needs.length ? order : undefined;
}

/**
 * One cycle, as indexes `[a, b, ..., a]` where each needs the next, or undefined. Walks needs
 * from a task Kahn's order could not place: every such task needs another such task.
 */
export function findCycle(needs: NeedsGraph): number[] | undefined {
  const placed = new Set(partialOrder(needs));
  const start = needs.findIndex((_, i) => !placed.has(i));
  if (start < 0) return undefined;
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  for (let at = start; ; ) {
    const before = seenAt.get(at);
    if (before !== undefined) return [...path.slice(before), at];
    seenAt.set(at, path.length);
    path.push(at);
    at = needs[at]!.find((d) => !placed.has(d))!;
  }
}

function partialOrder(needs: NeedsGraph): number[] {
  const n = needs.length;
  const waiting = new Int32Array(n);
  const dependents: number[][] = Array.from({ length: n }, () => []);
  needs.forEach((deps, i) => {
    waiting[i] = deps.length;
    for (const d of deps) dependents[d]!.push(i);
  });
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (waiting[i] === 0) order.push(i);
  for (let q = 0; q < order.length; q++) {
    for (const t of dependents[order[q]!]!) if (--waiting[t]! === 0) order.push(t);
  }
  return order;
}

/** For each task, the set of tasks it needs directly or not, as a bitset. */
export class Reachability {
  private readonly words: number;
  private readonly bits: Uint32Array;

  constructor(needs: NeedsGraph, order: readonly number[]) {
    const n = needs.length;
    this.words = (n + 31) >>> 5;
    this.bits = new Uint32Array(n * this.words);
    for (const i of order) {
      const row = i * this.words;
      for (const d of needs[i]!) {
        this.bits[row + (d >>> 5)]! |= 1 << (d & 31);
        const drow = d * this.words;
        for (let w = 0; w < this.words; w++) this.bits[row + w]! |= this.bits[drow + w]!;
      }
    }
  }

  /** Whether task `i` needs task `j`, directly or through others. */
  needs(i: number, j: number): boolean {
    return (this.bits[i * this.words + (j >>> 5)]! & (1 << (j & 31))) !== 0;
  }

  /** Whether `i` and `j` may run at the same time: neither needs the other. */
  concurrent(i: number, j: number): boolean {
    return i !== j && !this.needs(i, j) && !this.needs(j, i);
  }
}
