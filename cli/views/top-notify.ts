/**
 * What `mesh top` notifies (OSC 9/777 through cli/notify-osc.ts): a task that ends, and a task
 * that comes to need attention (a denied tool, parked on a quota, a conflict, no worker serves
 * it, lost), each once. The first snapshot is history: nothing that was already so is news.
 */
import type { Overview } from "../../daemon/lite.js";
import type { Notification } from "../notify-osc.js";

const ENDED: Record<string, string> = {
  succeeded: "succeeded",
  failed: "failed (needs attention)",
  dead: "died (needs attention)",
  cancelled: "cancelled",
};

export interface Seen {
  state: string;
  attention: boolean;
}

export class TopNotices {
  private seen: Map<string, Seen> | undefined;

  /** The notifications `ov` calls for since the last snapshot, with their once-only keys. */
  next(ov: Pick<Overview, "tasks">): Array<{ key: string; n: Notification }> {
    const prev = this.seen;
    const now = new Map<string, Seen>();
    const out: Array<{ key: string; n: Notification }> = [];
    for (const t of ov.tasks) {
      const cur = { state: t.state, attention: t.status.attention };
      now.set(t.id, cur);
      if (!prev) continue;
      const was = prev.get(t.id);
      const ended = ENDED[t.state];
      if (ended && was?.state !== t.state) {
        out.push({
          key: `${t.id}/${t.attempt}/${t.state}`,
          n: {
            title: `mesh: ${t.id} ${ended}`,
            body: `attempt ${t.attempt}${t.status.detail ? `: ${t.status.detail}` : ""}`,
          },
        });
      } else if (!ended && cur.attention && !was?.attention) {
        out.push({
          key: `${t.id}/${t.attempt}/attention/${t.status.kind}`,
          n: {
            title: `mesh: ${t.id} needs attention`,
            body: t.status.detail || t.status.kind,
          },
        });
      }
    }
    this.seen = now;
    return out;
  }
}
