/** A counting semaphore for task slots; `acquire` waits for a free slot or the signal. */
export class Slots {
  private used = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly total: number) {}

  get free(): number {
    return this.total - this.used;
  }
  get busy(): number {
    return this.used;
  }

  async acquire(signal: AbortSignal): Promise<boolean> {
    while (this.used >= this.total) {
      if (signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          // An aborted waiter leaves the queue: a later release wakes a live one instead.
          const i = this.waiters.indexOf(done);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        this.waiters.push(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
    if (signal.aborted) return false;
    this.used++;
    return true;
  }

  release(): void {
    if (this.used > 0) this.used--;
    const w = this.waiters.shift();
    w?.();
  }
}
