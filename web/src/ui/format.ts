// Values as a CSM reads them.

export function money(amount: number | null | undefined, currency = "USD"): string {
  if (amount === null || amount === undefined) return "—";
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency, maximumFractionDigits: 0 }).format(amount);
  } catch {
    return `${amount.toLocaleString()} ${currency}`;
  }
}

/** A date (`2026-03-01`) as a calendar date, never shifted by the reader's time zone. */
export function day(value: string | null | undefined): string {
  if (!value) return "—";
  const [year, month, date] = value.split("-").map(Number);
  if (!year || !month || !date) return value;
  return new Date(Date.UTC(year, month - 1, date)).toLocaleDateString(undefined, {
    timeZone: "UTC",
    year: "numeric",
    month: "short",
    day: "numeric",
  });
}

/** A point in time in the reader's zone, or in `timeZone` (a meeting's own) when given. */
export function moment(value: string | null | undefined, timeZone?: string): string {
  if (!value) return "—";
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) return value;
  try {
    return at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone });
  } catch {
    return at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
}

export function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

export function humanize(name: string): string {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const STAGES = ["onboarding", "adopting", "renewing", "at_risk", "churned"] as const;

export function stageName(stage: string): string {
  return stage === "at_risk" ? "At risk" : humanize(stage);
}
