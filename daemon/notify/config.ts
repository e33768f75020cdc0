/**
 * Webhook options (`webhooks:` in meshd's config). The secret is never written inline: it is
 * read from a file or an environment variable when the daemon starts.
 */
import { z } from "zod";
import { NAME_RE } from "../tasks/index.js";
import { parseDuration } from "../util/index.js";

const ms = (def: number) =>
  z
    .union([z.number().int().positive(), z.string()])
    .transform((v, ctx) => {
      const n = typeof v === "number" ? v : parseDuration(v);
      if (n === undefined || n <= 0 || n > 86_400_000) {
        ctx.addIssue({
          code: "custom",
          message: `"${v}" is not a duration up to 24h; use e.g. 500ms, 15s, 2m`,
        });
        return z.NEVER;
      }
      return n;
    })
    .default(def);

export const WEBHOOK_EVENTS = ["terminal", "attention"] as const;
export type WebhookEventKind = (typeof WEBHOOK_EVENTS)[number];

export const webhookSchema = z
  .strictObject({
    /** http(s) URL the POST goes to (an ntfy topic URL for format ntfy). */
    url: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }),
    /**
     * Names the durable consumer every daemon with this webhook shares (one of them delivers
     * each event); default: derived from the URL. Change it and deliveries start afresh.
     */
    name: z.string().regex(NAME_RE, "names are 1-64 of A-Z a-z 0-9 _ -").optional(),
    /** File holding the HMAC secret (one line). */
    secretFile: z.string().min(1).optional(),
    /** Environment variable of meshd holding the HMAC secret. */
    secretEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _")
      .optional(),
    /** terminal: succeeded, failed, dead, cancelled; attention: failed, dead, parked at a usage limit, a tool denied, a plan conflict. */
    events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).default(["terminal", "attention"]),
    format: z.enum(["json", "ntfy"]).default("json"),
    /** A request not answered in this long counts as failed. */
    timeout: ms(10_000),
    /** First retry after this long, doubling each time up to maxBackoff. */
    backoff: ms(1_000),
    maxBackoff: ms(300_000),
  })
  .superRefine((w, ctx) => {
    if (w.secretFile && w.secretEnv) {
      ctx.addIssue({
        code: "custom",
        path: ["secretFile"],
        message: "give secretFile or secretEnv, not both",
      });
    }
    if (w.format === "json" && !w.secretFile && !w.secretEnv) {
      ctx.addIssue({
        code: "custom",
        path: ["secretFile"],
        message:
          "a json webhook is signed: give secretFile (a file holding the secret) or secretEnv (a variable name)",
      });
    }
  });

export type WebhookOptions = z.input<typeof webhookSchema>;
export type WebhookConfig = z.output<typeof webhookSchema>;
