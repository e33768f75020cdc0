/**
 * A child's output as lines, holding at most `maxChars` of any one line: a child that prints
 * without ever writing a newline cannot make the daemon buffer its output (readline would keep
 * the whole line, until the process runs out of memory or a string grows past V8's limit and
 * the daemon crashes). The rest of a too-long line is read and dropped.
 */
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";

export function onBoundedLines(input: Readable, maxChars: number, onLine: (line: string) => void): void {
  const decoder = new StringDecoder("utf8");
  let line = "";
  let full = false; // the current line reached maxChars: drop until its newline
  const take = (text: string): void => {
    let at = 0;
    while (at < text.length) {
      const nl = text.indexOf("\n", at);
      const end = nl < 0 ? text.length : nl;
      if (!full) {
        line += text.slice(at, Math.min(end, at + maxChars - line.length));
        if (line.length >= maxChars) full = true;
      }
      if (nl < 0) return;
      onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
      line = "";
      full = false;
      at = nl + 1;
    }
  };
  input.on("data", (chunk: Buffer | string) =>
    take(typeof chunk === "string" ? chunk : decoder.write(chunk)),
  );
  input.on("end", () => {
    take(decoder.end());
    if (line.length > 0) onLine(line);
    line = "";
  });
}

export interface OutputLine {
  stream: "stdout" | "stderr";
  line: string;
}

/** Above this many unread lines the streams pause (the child then blocks on its pipe). */
const HIGH_WATER = 1024;

/**
 * Several streams' bounded lines as one async iterator, in arrival order, ending when every
 * stream has ended. A slow reader pauses the streams instead of buffering without bound.
 */
export class LineQueue {
  private readonly queue: OutputLine[] = [];
  private readonly streams: Readable[] = [];
  private open = 0;
  private wake: (() => void) | undefined;
  private done = false;

  constructor(private readonly maxChars: number) {}

  add(stream: OutputLine["stream"], input: Readable): void {
    this.open++;
    this.streams.push(input);
    onBoundedLines(input, this.maxChars, (line) => {
      if (this.done) return;
      this.queue.push({ stream, line });
      if (this.queue.length >= HIGH_WATER) for (const s of this.streams) s.pause();
      this.notify();
    });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.open--;
      this.notify();
    };
    input.once("end", end);
    input.once("close", end);
    input.once("error", end);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *iterate(): AsyncIterableIterator<OutputLine> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next) {
          if (this.queue.length < HIGH_WATER / 2) for (const s of this.streams) s.resume();
          yield next;
          continue;
        }
        if (this.open === 0) return;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
      }
    } finally {
      // A reader that stopped early: keep draining (and dropping) so the child never blocks on
      // a full pipe.
      this.done = true;
      this.queue.length = 0;
      for (const s of this.streams) s.resume();
    }
  }
}
