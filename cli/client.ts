/**
 * The CLI's gRPC client: one channel to the daemon, a deadline on every call, streams as
 * async iterables that cancel on abort. Failures come out as one-line CliErrors.
 */
import { existsSync, readFileSync } from "node:fs";
import {
  type CallOptions,
  type ChannelCredentials,
  type ClientReadableStream,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import {
  type CancelTaskResponse,
  type FetchResultsRequest,
  type FetchResultsResponse,
  type ShipRepoRequest,
  type ShipRepoResponse,
  type GetPlanResponse,
  type GetQuotaResponse,
  type GetTaskResponse,
  type ListPlansResponse,
  type SubmitPlanResponse,
  type ListTasksRequest,
  type ListTasksResponse,
  type ListWorkersResponse,
  MeshServiceClient,
  type RetryTaskResponse,
  type SubmitTasksResponse,
  type WatchMeshResponse,
  type WatchTaskResponse,
} from "../proto/index.js";
import { CliError, EXIT, fromServiceError, isServiceError } from "./errors.js";
import type { DaemonTarget } from "./target.js";

export interface ClientOptions {
  target: DaemonTarget;
  /** Deadline of each unary call. */
  timeoutMs: number;
  token?: string;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CliError(
      EXIT.USAGE,
      `${flag} ${path}: cannot read it (${(err as Error).message})`,
      "INVALID_ARGUMENT",
      {
        cause: err,
        field: flag,
      },
    );
  }
}

function channelCredentials(o: ClientOptions): ChannelCredentials {
  if (o.target.kind === "unix") return credentials.createInsecure();
  if (Boolean(o.tlsCertFile) !== Boolean(o.tlsKeyFile)) {
    throw new CliError(
      EXIT.USAGE,
      "--tls-cert and --tls-key go together (client certificate and its key)",
      "INVALID_ARGUMENT",
    );
  }
  const ssl = credentials.createSsl(
    o.tlsCaFile ? readPem(o.tlsCaFile, "--tls-ca") : null,
    o.tlsKeyFile ? readPem(o.tlsKeyFile, "--tls-key") : null,
    o.tlsCertFile ? readPem(o.tlsCertFile, "--tls-cert") : null,
  );
  const token = o.token;
  if (!token) return ssl;
  const bearer = credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    callback(null, md);
  });
  return credentials.combineChannelCredentials(ssl, bearer);
}

type UnaryFn<Res> = (
  md: Metadata,
  opts: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => ClientUnaryCall;

export class MeshClient {
  private readonly raw: MeshServiceClient;

  constructor(private readonly opts: ClientOptions) {
    const address = opts.target.kind === "unix" ? `unix:${opts.target.path}` : opts.target.display;
    this.raw = new MeshServiceClient(address, channelCredentials(opts), {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      // One attempt: a CLI should say "unreachable" at once, not retry quietly for minutes.
      "grpc.enable_retries": 0,
    });
  }

  get target(): string {
    return this.opts.target.display;
  }

  /** The daemon is on this machine (its Unix socket): it can read and write this machine's repositories. */
  get isLocal(): boolean {
    return this.opts.target.kind === "unix";
  }

  close(): void {
    this.raw.close();
  }

  /** A failed call as a CliError, with a better "why" when the socket is simply missing. */
  toCliError(err: unknown): unknown {
    if (!isServiceError(err)) return err;
    if (
      err.code === status.UNAVAILABLE &&
      this.opts.target.kind === "unix" &&
      !existsSync(this.opts.target.path)
    ) {
      return new CliError(
        EXIT.UNREACHABLE,
        `cannot reach meshd: no socket at ${this.opts.target.path}; start the daemon (\`mesh up\`, or \`meshd --nats <url>\`) or point --daemon / MESH_DAEMON at its socket`,
        "UNAVAILABLE",
        { cause: err },
      );
    }
    return fromServiceError(err, this.target);
  }

  private unary<Res>(fn: UnaryFn<Res>, timeoutMs = this.opts.timeoutMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn(new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(this.toCliError(err)) : resolve(res),
      );
    });
  }

  submitTasks(document: string, source: string): Promise<SubmitTasksResponse> {
    return this.unary((md, o, cb) => this.raw.submitTasks({ document, source }, md, o, cb));
  }
  submitPlan(document: string, source: string, submitter: string): Promise<SubmitPlanResponse> {
    return this.unary((md, o, cb) => this.raw.submitPlan({ document, source, submitter }, md, o, cb));
  }
  getPlan(id: string): Promise<GetPlanResponse> {
    return this.unary((md, o, cb) => this.raw.getPlan({ id }, md, o, cb));
  }
  listPlans(): Promise<ListPlansResponse> {
    return this.unary((md, o, cb) => this.raw.listPlans({}, md, o, cb));
  }
  getQuota(): Promise<GetQuotaResponse> {
    return this.unary((md, o, cb) => this.raw.getQuota({}, md, o, cb));
  }
  listWorkers(): Promise<ListWorkersResponse> {
    return this.unary((md, o, cb) => this.raw.listWorkers({}, md, o, cb));
  }
  getTask(id: string): Promise<GetTaskResponse> {
    return this.unary((md, o, cb) => this.raw.getTask({ id }, md, o, cb));
  }
  listTasks(req: ListTasksRequest): Promise<ListTasksResponse> {
    return this.unary((md, o, cb) => this.raw.listTasks(req, md, o, cb));
  }
  cancelTask(id: string): Promise<CancelTaskResponse> {
    return this.unary((md, o, cb) => this.raw.cancelTask({ id }, md, o, cb));
  }
  retryTask(id: string): Promise<RetryTaskResponse> {
    return this.unary((md, o, cb) => this.raw.retryTask({ id }, md, o, cb));
  }
  /** Bundling and uploading a repository's history can take a while: a longer deadline. */
  shipRepo(req: ShipRepoRequest): Promise<ShipRepoResponse> {
    return this.unary(
      (md, o, cb) => this.raw.shipRepo(req, md, o, cb),
      Math.max(this.opts.timeoutMs, 600_000),
    );
  }
  fetchResults(req: FetchResultsRequest): Promise<FetchResultsResponse> {
    return this.unary(
      (md, o, cb) => this.raw.fetchResults(req, md, o, cb),
      Math.max(this.opts.timeoutMs, 600_000),
    );
  }

  /** Ends normally after the task's terminal state; throws a CliError on failure. */
  watchTask(
    id: string,
    o: { signal: AbortSignal; deadlineMs: number; history?: boolean },
  ): AsyncIterable<WatchTaskResponse> {
    return this.stream(
      this.raw.watchTask({ id, history: o.history === true }, new Metadata(), {
        deadline: Date.now() + o.deadlineMs,
      }),
      o.signal,
    );
  }

  watchMesh(o: { signal: AbortSignal; deadlineMs: number }): AsyncIterable<WatchMeshResponse> {
    return this.stream(
      this.raw.watchMesh({}, new Metadata(), { deadline: Date.now() + o.deadlineMs }),
      o.signal,
    );
  }

  private async *stream<T>(call: ClientReadableStream<T>, signal: AbortSignal): AsyncIterable<T> {
    const onAbort = () => call.cancel();
    if (signal.aborted) call.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const msg of call) yield msg as T;
    } catch (err) {
      // Our own cancel (Ctrl-C) is not a failure: the caller checks `signal.aborted`.
      if (signal.aborted && isServiceError(err) && err.code === status.CANCELLED) return;
      throw this.toCliError(err);
    } finally {
      signal.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }
}
