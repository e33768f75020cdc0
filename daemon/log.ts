import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/**
 * Structured logs to stderr (or `destination`). Secrets never go through here: callers log ids,
 * not payloads.
 */
export function createLogger(
  level: string,
  base: Record<string, unknown> = {},
  destination: DestinationStream = pino.destination(2),
): Logger {
  return pino(
    {
      level,
      base,
      redact: {
        paths: ["*.password", "*.token", "*.apiKey", "*.authorization", "password", "token"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
