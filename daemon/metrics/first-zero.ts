/**
 * Counters whose every series is scraped at 0 before it first counts. Prometheus' increase() and
 * rate() cannot see what a series held when it first appeared, so a series born at its first
 * increment loses that increment (a model's or pool's whole first session). Here a new series
 * starts at 0 and its increments are held back until a scrape has shown that 0; the scrape after
 * shows them. Series created ahead (`zero()`, e.g. at start or when a session starts) are
 * usually scraped at 0 long before anything counts, and then nothing is held.
 *
 * "Shown" means rendered into one /metrics answer; a second scraper of the same daemon (an HA
 * pair of Prometheus) may miss the 0 of a series the first one saw.
 */
import type { Counter, Histogram } from "prom-client";

type Labels<L extends string> = Partial<Record<L, string>>;

/** Something that holds values back until a scrape has shown its series at 0. */
interface Held {
  /** Synchronously, just before the registry renders; the returned function runs after it did. */
  beforeRender(): () => void;
}

const keyOf = (labels: Record<string, string | undefined>): string =>
  JSON.stringify(
    Object.keys(labels)
      .sort()
      .map((k) => [k, labels[k]]),
  );

export class ScrapeGate {
  private readonly members: Held[] = [];

  add<T extends Held>(member: T): T {
    this.members.push(member);
    return member;
  }

  /** Call synchronously right before rendering; call what it returns once the text is rendered. */
  rendering(): () => void {
    const after = this.members.map((m) => m.beforeRender());
    return () => {
      for (const a of after) a();
    };
  }
}

/**
 * The bookkeeping both kinds share: which series a scrape has shown, and what each series not
 * yet shown holds back (`H`), released into the real metric once a scrape has shown it at 0.
 */
abstract class ZeroFirst<L extends string, H> implements Held {
  private readonly shown = new Set<string>();
  private readonly fresh = new Map<string, { labels: Labels<L>; held: H }>();

  /** Creates the series at 0 in the real metric. */
  protected abstract create(labels: Labels<L>): void;
  protected abstract empty(): H;
  /** Gives the real metric what was held back. */
  protected abstract release(labels: Labels<L>, held: H): void;

  /** Creates the series at 0 unless it exists. */
  zero(labels: Labels<L>): void {
    const k = keyOf(labels);
    if (this.shown.has(k) || this.fresh.has(k)) return;
    this.create(labels);
    this.fresh.set(k, { labels, held: this.empty() });
  }

  /** The held-back value of a series not yet shown, or undefined once it was (count directly). */
  protected holding(labels: Labels<L>): { held: H } | undefined {
    const k = keyOf(labels);
    if (this.shown.has(k)) return undefined;
    this.zero(labels);
    return this.fresh.get(k);
  }

  beforeRender(): () => void {
    const rendered = [...this.fresh.keys()];
    return () => {
      for (const k of rendered) {
        const f = this.fresh.get(k);
        if (!f) continue;
        this.fresh.delete(k);
        this.shown.add(k);
        this.release(f.labels, f.held);
      }
    };
  }
}

export class ZeroFirstCounter<L extends string> extends ZeroFirst<L, number> {
  constructor(private readonly counter: Counter<L>) {
    super();
  }

  protected create(labels: Labels<L>): void {
    this.counter.inc(labels, 0);
  }

  protected empty(): number {
    return 0;
  }

  protected release(labels: Labels<L>, held: number): void {
    if (held > 0) this.counter.inc(labels, held);
  }

  inc(labels: Labels<L>, n = 1): void {
    const f = this.holding(labels);
    if (f) f.held += n;
    else this.counter.inc(labels, n);
  }
}

/** Observations of a series not yet scraped, kept at most this many (then the oldest are dropped). */
const MAX_HELD_OBSERVATIONS = 1000;

export class ZeroFirstHistogram<L extends string> extends ZeroFirst<L, number[]> {
  constructor(private readonly histogram: Histogram<L>) {
    super();
  }

  protected create(labels: Labels<L>): void {
    this.histogram.zero(labels);
  }

  protected empty(): number[] {
    return [];
  }

  protected release(labels: Labels<L>, held: number[]): void {
    for (const v of held) this.histogram.observe(labels, v);
  }

  observe(labels: Labels<L>, value: number): void {
    const f = this.holding(labels);
    if (!f) {
      this.histogram.observe(labels, value);
      return;
    }
    f.held.push(value);
    if (f.held.length > MAX_HELD_OBSERVATIONS) f.held.shift();
  }
}
