// A customer's stakeholders as editable rows (DESIGN §3): who they are and what they decide.

import type { Stakeholder } from "../api/types";

export interface StakeholderRow {
  key: number;
  name: string;
  email: string;
  role: string;
  is_champion: boolean;
  is_decision_maker: boolean;
}

let nextKey = 1;

export function rowsOf(stakeholders: Stakeholder[]): StakeholderRow[] {
  return stakeholders.map((s) => ({
    key: nextKey++,
    name: s.name,
    email: s.email ?? "",
    role: s.role ?? "",
    is_champion: s.is_champion ?? false,
    is_decision_maker: s.is_decision_maker ?? false,
  }));
}

export function stakeholdersOf(rows: StakeholderRow[]): Stakeholder[] {
  return rows
    .filter((row) => row.name.trim() || row.email.trim() || row.role.trim())
    .map((row) => ({
      name: row.name.trim(),
      email: row.email.trim() || null,
      role: row.role.trim() || null,
      is_champion: row.is_champion,
      is_decision_maker: row.is_decision_maker,
    }));
}

interface Props {
  rows: StakeholderRow[];
  onChange: (rows: StakeholderRow[]) => void;
  errors: Record<string, string>;
}

export function StakeholdersEditor({ rows, onChange, errors }: Props) {
  const update = (key: number, change: Partial<StakeholderRow>) =>
    onChange(rows.map((row) => (row.key === key ? { ...row, ...change } : row)));
  const add = () =>
    onChange([...rows, { key: nextKey++, name: "", email: "", role: "", is_champion: false, is_decision_maker: false }]);
  const listError = errors.stakeholders;
  return (
    <fieldset className="stakeholders">
      <legend>Stakeholders</legend>
      {rows.length === 0 && <p className="hint">No stakeholders yet.</p>}
      {rows.map((row, index) => {
        const n = index + 1;
        const error = (field: string) => errors[`stakeholders.${index}.${field}`];
        return (
          <div className="stakeholder-row" key={row.key} role="group" aria-label={`Stakeholder ${n}`}>
            <label>
              <span>Stakeholder {n} name</span>
              <input value={row.name} required onChange={(e) => update(row.key, { name: e.target.value })} aria-invalid={!!error("name") || undefined} />
              {error("name") && <small className="field-error">{error("name")}</small>}
            </label>
            <label>
              <span>Stakeholder {n} e-mail</span>
              <input type="email" value={row.email} onChange={(e) => update(row.key, { email: e.target.value })} aria-invalid={!!error("email") || undefined} />
              {error("email") && <small className="field-error">{error("email")}</small>}
            </label>
            <label>
              <span>Stakeholder {n} role</span>
              <input value={row.role} onChange={(e) => update(row.key, { role: e.target.value })} />
            </label>
            <label className="check">
              <input type="checkbox" checked={row.is_champion} onChange={(e) => update(row.key, { is_champion: e.target.checked })} />
              <span>
                <span className="visually-hidden">Stakeholder {n} is a </span>Champion
              </span>
            </label>
            <label className="check">
              <input
                type="checkbox"
                checked={row.is_decision_maker}
                onChange={(e) => update(row.key, { is_decision_maker: e.target.checked })}
              />
              <span>
                <span className="visually-hidden">Stakeholder {n} is a </span>Decision maker
              </span>
            </label>
            <button type="button" onClick={() => onChange(rows.filter((r) => r.key !== row.key))}>
              Remove stakeholder {n}
            </button>
          </div>
        );
      })}
      {listError && <small className="field-error">{listError}</small>}
      <button type="button" onClick={add}>
        Add stakeholder
      </button>
    </fieldset>
  );
}
