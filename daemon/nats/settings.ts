/**
 * How meshd reaches NATS: the `nats:` block of its config, validated once (zod) by
 * config.ts's compileConfig. It lives here so the NATS room needs nothing from the config.
 */
import { z } from "zod";

const natsUrl = z
  .string()
  .regex(/^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+:\d+$/, "expected a NATS url like nats://127.0.0.1:4222");

export const natsOptionsSchema = z
  .strictObject({
    servers: z.array(natsUrl).min(1).default(["nats://127.0.0.1:4222"]),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    nkeySeedFile: z.string().min(1).optional(),
    /** A NATS .creds file (user JWT + nkey seed), as `nsc` writes and the `nats` CLI reads. */
    credsFile: z.string().min(1).optional(),
    tlsCaFile: z.string().min(1).optional(),
    tlsCertFile: z.string().min(1).optional(),
    tlsKeyFile: z.string().min(1).optional(),
    /** JetStream domain when connecting through a leaf node. */
    domain: z.string().min(1).optional(),
    /** Replicas for streams and buckets this daemon creates (3 on a cluster). */
    replicas: z.number().int().min(1).max(5).default(1),
    /** Allow a NATS on another machine without TLS or without credentials (trusted networks only). */
    insecure: z.boolean().default(false),
  })
  .default({ servers: ["nats://127.0.0.1:4222"], replicas: 1, insecure: false });

/** The compiled `nats:` block. */
export type NatsSettings = z.output<typeof natsOptionsSchema>;
