/**
 * Label hygiene. Tool and model names come from agents and task specs (user input), so each
 * label keeps at most `max` distinct values; later newcomers are folded into "other" rather
 * than growing a series per typo.
 */
const MAX_VALUE_LENGTH = 100;

export class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  value(raw: unknown, fallback = "unknown"): string {
    const v = typeof raw === "string" && raw.trim() !== "" ? raw.trim().slice(0, MAX_VALUE_LENGTH) : fallback;
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) return "other";
    this.seen.add(v);
    return v;
  }
}

/** An HTTP/API status as a label: "429", or "unknown" when the agent did not say. */
export function statusLabel(raw: unknown): string {
  return typeof raw === "number" && Number.isInteger(raw) && raw >= 100 && raw <= 999
    ? String(raw)
    : "unknown";
}

export const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
