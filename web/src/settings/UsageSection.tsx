// Today's model usage against the daily budget (DESIGN §4, GET /usage).

import { usage } from "../api/endpoints";
import { useResource } from "../ui/data";
import { moment } from "../ui/format";
import { Busy, ErrorMessage } from "../ui/parts";

export function UsageSection() {
  const today = useResource(() => usage.get(), []);
  const u = today.data;
  const percent = u && u.token_budget > 0 ? Math.min(100, Math.round((u.tokens_used / u.token_budget) * 100)) : 0;
  return (
    <section className="panel" aria-labelledby="usage-title">
      <h2 id="usage-title">Model usage today</h2>
      <ErrorMessage error={today.error} onRetry={() => void today.reload()} />
      {today.loading && !u && <Busy label="Loading usage…" />}
      {u && (
        <>
          <label className="meter">
            <span>
              {u.tokens_used.toLocaleString()} of {u.token_budget.toLocaleString()} tokens used on {u.day} ({percent}%)
            </span>
            <meter min={0} max={u.token_budget || 1} value={u.tokens_used} high={u.token_budget * 0.8} optimum={0} />
          </label>
          <p className="muted">
            Chat answers and contract reading count against it. It starts again at {moment(u.resets_at)}.
            {u.tokens_used >= u.token_budget && " Until then the agent and contract reading are paused."}
          </p>
          <button type="button" onClick={() => void today.reload()}>
            Refresh usage
          </button>
        </>
      )}
    </section>
  );
}
