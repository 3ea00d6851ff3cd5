// The CSM's profile and preferences (DESIGN §3): name, time zone, signature, the default model
// provider, and which low-risk actions are approved without asking.

import { type FormEvent, useEffect, useState } from "react";
import { ApiError } from "../api/client";
import { profile } from "../api/endpoints";
import type { LowRiskActionType, Profile, ProfileUpdate, Provider } from "../api/types";
import { useResource } from "../ui/data";
import { Busy, ErrorMessage, Field } from "../ui/parts";

const LOW_RISK: { type: LowRiskActionType; label: string; hint: string }[] = [
  { type: "task.create", label: "Creating tasks", hint: "The agent's tasks go straight onto your list." },
  {
    type: "email.draft",
    label: "Saving e-mail drafts in Gmail",
    hint: "Only when every recipient is known for the customer; a draft is never sent.",
  },
];

const ZONES: string[] = (() => {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["UTC"];
  }
})();

interface Form {
  display_name: string;
  timezone: string;
  signature: string;
  default_provider: Provider;
  auto_approve: LowRiskActionType[];
}

function formOf(p: Profile): Form {
  return {
    display_name: p.display_name ?? "",
    timezone: p.timezone,
    signature: p.signature ?? "",
    default_provider: p.preferences.default_provider,
    auto_approve: [...p.preferences.auto_approve],
  };
}

export function ProfileSection() {
  const current = useResource(() => profile.get(), []);
  const [form, setForm] = useState<Form | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (current.data) setForm(formOf(current.data));
  }, [current.data]);

  if (!form || !current.data) {
    return (
      <section className="panel" aria-labelledby="profile-title">
        <h2 id="profile-title">Profile and preferences</h2>
        <ErrorMessage error={current.error} onRetry={() => void current.reload()} />
        {!current.error && <Busy label="Loading your profile…" />}
      </section>
    );
  }

  const before = formOf(current.data);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const body: ProfileUpdate = {};
    if (form.display_name !== before.display_name) body.display_name = form.display_name.trim() || null;
    if (form.timezone !== before.timezone) body.timezone = form.timezone;
    if (form.signature !== before.signature) body.signature = form.signature.trim() || null;
    const preferences: NonNullable<ProfileUpdate["preferences"]> = {};
    if (form.default_provider !== before.default_provider) preferences.default_provider = form.default_provider;
    if ([...form.auto_approve].sort().join() !== [...before.auto_approve].sort().join())
      preferences.auto_approve = form.auto_approve;
    if (Object.keys(preferences).length) body.preferences = preferences;
    if (Object.keys(body).length === 0) {
      setSaved(true);
      return;
    }
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      current.set(await profile.update(body, current.etag));
      setSaved(true);
    } catch (failure) {
      setError(failure as Error);
      if (failure instanceof ApiError && failure.code === "FAILED_PRECONDITION") void current.reload();
    } finally {
      setBusy(false);
    }
  };
  const errors = error instanceof ApiError ? error.fieldErrors : {};
  const set = (change: Partial<Form>) => {
    setSaved(false);
    setForm({ ...form, ...change });
  };

  return (
    <section className="panel" aria-labelledby="profile-title">
      <h2 id="profile-title">Profile and preferences</h2>
      <form onSubmit={submit} className="form" aria-labelledby="profile-title">
        <div className="grid">
          <Field label="Your name" error={errors.display_name}>
            {(p) => <input {...p} maxLength={200} value={form.display_name} onChange={(e) => set({ display_name: e.target.value })} />}
          </Field>
          <Field label="Time zone" hint="Meetings are proposed in it." error={errors.timezone}>
            {(p) => (
              <select {...p} value={form.timezone} onChange={(e) => set({ timezone: e.target.value })}>
                {(ZONES.includes(form.timezone) ? ZONES : [form.timezone, ...ZONES]).map((zone) => (
                  <option key={zone} value={zone}>
                    {zone}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <Field label="E-mail signature" error={errors.signature}>
          {(p) => <textarea {...p} rows={3} maxLength={5000} value={form.signature} onChange={(e) => set({ signature: e.target.value })} />}
        </Field>
        <fieldset>
          <legend>Default model provider</legend>
          {(["claude", "gemini"] as const).map((provider) => (
            <label key={provider} className="check">
              <input
                type="radio"
                name="default_provider"
                value={provider}
                checked={form.default_provider === provider}
                onChange={() => set({ default_provider: provider })}
              />
              <span>{provider === "claude" ? "Claude (Anthropic)" : "Gemini (Google)"}</span>
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Approve without asking</legend>
          <p className="hint">E-mails to send and meetings to book always wait for your approval.</p>
          {LOW_RISK.map((item) => (
            <label key={item.type} className="check">
              <input
                type="checkbox"
                checked={form.auto_approve.includes(item.type)}
                onChange={(e) =>
                  set({
                    auto_approve: e.target.checked
                      ? [...form.auto_approve, item.type]
                      : form.auto_approve.filter((t) => t !== item.type),
                  })
                }
              />
              <span>
                {item.label} <small className="hint">{item.hint}</small>
              </span>
            </label>
          ))}
          {errors["preferences.auto_approve"] && <small className="field-error">{errors["preferences.auto_approve"]}</small>}
        </fieldset>
        <ErrorMessage error={error} />
        {saved && <p role="status">Saved.</p>}
        <button type="submit" className="primary" disabled={busy}>
          Save preferences
        </button>
      </form>
    </section>
  );
}
