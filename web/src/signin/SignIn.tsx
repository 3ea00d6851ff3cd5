import { type FormEvent, useState } from "react";
import { resetPassword, signIn, signUp } from "../auth";
import { Field } from "../ui/parts";

type Mode = "sign-in" | "sign-up";

export function SignIn() {
  const [mode, setMode] = useState<Mode>("sign-in");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await (mode === "sign-in" ? signIn(email, password) : signUp(email, password));
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const forgot = async () => {
    setError(null);
    if (!email) {
      setError("Enter your e-mail first, then ask for the reset link.");
      return;
    }
    try {
      await resetPassword(email);
      setNotice(`If ${email} has an account, a link to reset its password is on its way.`);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const title = mode === "sign-in" ? "Sign in to CSCX" : "Create your CSCX account";
  return (
    <main className="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">{title}</h1>
        <p className="lede">Your customers, their contracts and an agent that drafts the follow-ups — you approve.</p>
        <Field label="E-mail">
          {(props) => (
            <input
              {...props}
              type="email"
              autoComplete="email"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          )}
        </Field>
        <Field label="Password" hint={mode === "sign-up" ? "At least 6 characters." : undefined}>
          {(props) => (
            <input
              {...props}
              type="password"
              autoComplete={mode === "sign-in" ? "current-password" : "new-password"}
              required
              minLength={mode === "sign-up" ? 6 : undefined}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        {notice && <p role="status">{notice}</p>}
        <button type="submit" className="primary" disabled={busy}>
          {mode === "sign-in" ? "Sign in" : "Create account"}
        </button>
        <div className="signin-switch">
          {mode === "sign-in" ? (
            <>
              <button type="button" className="link" onClick={() => setMode("sign-up")}>
                New here? Create an account
              </button>
              <button type="button" className="link" onClick={() => void forgot()}>
                Forgot your password?
              </button>
            </>
          ) : (
            <button type="button" className="link" onClick={() => setMode("sign-in")}>
              Have an account? Sign in
            </button>
          )}
        </div>
      </form>
    </main>
  );
}
