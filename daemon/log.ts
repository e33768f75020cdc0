import { type Logger, pino } from "pino";

export type { Logger };

/** Structured logs to stderr. Secrets never go through here: callers log ids, not payloads. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base,
      redact: {
        paths: ["*.password", "*.token", "*.apiKey", "*.authorization", "password", "token"],
        censor: "[redacted]",
      },
    },
    pino.destination(2),
  );
}
