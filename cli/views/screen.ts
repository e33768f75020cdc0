/**
 * A full-screen terminal surface without flicker: the alternate screen, the cursor hidden, and
 * each frame written as only the lines that changed since the last one (cursor moved to the
 * line, the line written, the rest of it cleared), all in one write. A resize redraws it all.
 */

const ESC = "\x1b[";

export interface ScreenOut {
  write(s: string): unknown;
  columns?: number;
  rows?: number;
}

export class Screen {
  private shown: string[] = [];
  private active = false;

  constructor(private readonly out: ScreenOut) {}

  get width(): number {
    return this.out.columns ?? 100;
  }
  get height(): number {
    return this.out.rows ?? 30;
  }

  enter(): void {
    if (this.active) return;
    this.active = true;
    this.out.write(`${ESC}?1049h${ESC}?25l${ESC}2J`);
    this.shown = [];
  }

  leave(): void {
    if (!this.active) return;
    this.active = false;
    this.out.write(`${ESC}?25h${ESC}?1049l`);
  }

  /** Forget what is shown: the next frame is drawn whole (after a resize). */
  invalidate(): void {
    this.shown = [];
    this.out.write(`${ESC}2J`);
  }

  /** Draws `lines` (already fit to the width), writing only those that differ from the last frame. */
  draw(lines: readonly string[]): number {
    const h = this.height;
    const frame = lines.slice(0, h);
    let buf = "";
    let changed = 0;
    const n = Math.max(frame.length, this.shown.length);
    for (let i = 0; i < n && i < h; i++) {
      const next = frame[i] ?? "";
      if (this.shown[i] === next) continue;
      buf += `${ESC}${i + 1};1H${next}${ESC}K`;
      changed++;
    }
    this.shown = frame;
    if (buf) this.out.write(buf);
    return changed;
  }
}
