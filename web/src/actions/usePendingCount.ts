import { useEffect, useState } from "react";
import { actions } from "../api/endpoints";

const CHANGED = "cscx:actions-changed";

/** Tell the navigation that an action was decided or proposed, so its count is read again. */
export function actionsChanged(): void {
  window.dispatchEvent(new Event(CHANGED));
}

/** How many actions wait for a decision (at most 100 counted), read again on each navigation. */
export function usePendingCount(path: string): number {
  const [count, setCount] = useState(0);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const again = () => setTick((t) => t + 1);
    window.addEventListener(CHANGED, again);
    window.addEventListener("focus", again);
    return () => {
      window.removeEventListener(CHANGED, again);
      window.removeEventListener("focus", again);
    };
  }, []);
  useEffect(() => {
    let live = true;
    actions
      .list({ status: "pending", limit: 100 })
      .then(({ data }) => live && setCount(data.items.length))
      .catch(() => {
        // The count is a hint; the actions view shows the error itself.
      });
    return () => {
      live = false;
    };
  }, [path, tick]);
  return count;
}
