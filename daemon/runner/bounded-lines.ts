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
