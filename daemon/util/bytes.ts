const UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** "64KiB", "8MiB", "1GiB", "500MB", "4096" -> bytes; undefined when not a size. */
export function parseBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?$/i.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (UNITS[(m[2] ?? "b").toLowerCase()] ?? 0);
  return Number.isSafeInteger(Math.round(n)) ? Math.round(n) : undefined;
}

/** 8388608 -> "8 MiB" (for messages naming a limit). */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (n >= size && n % (size / 16) === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}
