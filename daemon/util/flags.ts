/** Parsers for command-line flag values shared by `meshd` and `mesh up` (commander argParsers). */
import { InvalidArgumentError } from "commander";

export function parseList(v: string): string[] {
  return v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function parseLabels(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of parseList(v)) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new InvalidArgumentError(`"${kv}" is not k=v (e.g. --labels gpu=true,os=linux)`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

export function parseWholeNumber(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`"${v}" is not a whole number`);
  return n;
}
