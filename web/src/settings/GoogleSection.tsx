// The Google connection (DESIGN §5): connect through Google's consent, then complete the
// connection with this user's own token when Google sends the browser back here.

import { useEffect, useRef, useState } from "react";
import { google } from "../api/endpoints";
import { navigate, useLocation } from "../router";
import { useResource } from "../ui/data";
import { Busy, ConfirmButton, ErrorMessage } from "../ui/parts";

const RETURN_PATH = "/settings/integrations";

const REASONS: Record<string, string> = {
  access_denied: "Access was declined on Google's page.",
  invalid_state: "That connection link had expired or was already used. Connect again.",
  invalid_grant: "Google did not accept the sign-in. Connect again.",
  missing_scopes: "Not every permission was granted on Google's page: CSCX needs all of them to send and book.",
};

// A grant is used once (DESIGN §5); a page that renders twice must not use it twice.
const completing = new Map<string, Promise<unknown>>();

export function GoogleSection() {
  const { path, query } = useLocation();
  const status = useResource(() => google.status(), []);
  const [error, setError] = useState<Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [working, setWorking] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);

  // Back from Google's consent page.
  const outcome = path === RETURN_PATH ? query.get("google") : null;
  const grant = query.get("grant");
  const reason = query.get("reason");
  useEffect(() => {
    if (!outcome) return;
    heading.current?.scrollIntoView();
    if (outcome === "pending" && grant) {
      setWorking("Completing the connection…");
      if (!completing.has(grant)) completing.set(grant, google.complete({ grant }));
      completing
        .get(grant)!
        .then(
          () => setNotice("Google is connected."),
          (failure: Error) => setError(failure),
        )
        .finally(() => {
          setWorking(null);
          void status.reload();
          navigate(RETURN_PATH, { replace: true });
        });
    } else if (outcome === "error") {
      setError(new Error(REASONS[reason ?? ""] ?? `Google could not be connected (${reason ?? "no reason given"}).`));
      navigate(RETURN_PATH, { replace: true });
    }
  }, [outcome, grant, reason]); // Only a new return from Google is news here.

  const connect = async () => {
    setError(null);
    setWorking("Opening Google…");
    try {
      const { data } = await google.connect();
      window.location.assign(data.auth_url);
    } catch (failure) {
      setError(failure as Error);
      setWorking(null);
    }
  };
  const disconnect = async () => {
    setError(null);
    try {
      await google.disconnect();
      setNotice("Google is disconnected.");
      await status.reload();
    } catch (failure) {
      setError(failure as Error);
    }
  };

  const connection = status.data;
  return (
    <section className="panel" aria-labelledby="google-title">
      <h2 id="google-title" ref={heading}>
        Google account
      </h2>
      <p className="lede">Gmail and Calendar, for the e-mails and meetings you approve. Nothing is sent without your approval.</p>
      {notice && <p role="status">{notice}</p>}
      <ErrorMessage error={error} />
      <ErrorMessage error={status.error} onRetry={() => void status.reload()} />
      {working && <Busy label={working} />}
      {connection && !working && (
        <>
          {connection.status === "connected" && (
            <p>
              Connected as <strong>{connection.google_email}</strong>.
            </p>
          )}
          {connection.status === "needs_reauth" && (
            <p className="warning" role="note">
              Google no longer accepts CSCX's access for {connection.google_email}. Connect again to send and book.
            </p>
          )}
          {connection.status === "disconnected" && <p>Not connected.</p>}
          {connection.scopes.length > 0 && (
            <details>
              <summary>Permissions granted</summary>
              <ul>
                {connection.scopes.map((scope) => (
                  <li key={scope}>{scope.replace("https://www.googleapis.com/auth/", "")}</li>
                ))}
              </ul>
            </details>
          )}
          <div className="buttons">
            <button type="button" className="primary" onClick={() => void connect()}>
              {connection.status === "disconnected" ? "Connect Google" : "Connect Google again"}
            </button>
            {connection.status !== "disconnected" && (
              <ConfirmButton
                label="Disconnect Google"
                question="Disconnect Google? Approved e-mails and meetings then fail until you connect again."
                confirmLabel="Disconnect"
                onConfirm={disconnect}
              />
            )}
          </div>
        </>
      )}
    </section>
  );
}
