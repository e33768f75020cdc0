/**
 * Keys from a raw-mode terminal read. One read can carry several keys (typing fast, a held key
 * repeating, a paste, `tmux send-keys -l jjj`), so a view handles each key in turn, never the
 * whole chunk as one key.
 */

/**
 * Split one read into keys: an escape sequence (`ESC [ ... final`, `ESC O x`) is one key, a lone
 * ESC is one key, any other character (a whole code point) is one key.
 */
export function splitKeys(chunk: string): string[] {
  const keys: string[] = [];
  let i = 0;
  while (i < chunk.length) {
    if (chunk[i] === "\x1b" && chunk[i + 1] === "[") {
      // CSI: parameters and intermediates, then one final byte in @..~
      let j = i + 2;
      while (j < chunk.length && !/[@-~]/.test(chunk[j]!)) j++;
      keys.push(chunk.slice(i, j + 1));
      i = j + 1;
    } else if (chunk[i] === "\x1b" && chunk[i + 1] === "O" && i + 2 < chunk.length) {
      keys.push(chunk.slice(i, i + 3)); // SS3: application-mode arrows (ESC O A)
      i += 3;
    } else {
      const cp = chunk.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      keys.push(ch);
      i += ch.length;
    }
  }
  return keys;
}
