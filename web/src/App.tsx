import { Component, type ReactNode, Suspense, lazy, useEffect, useRef } from "react";
import { SessionContext, signOut, useAuthState, useSession } from "./auth";
import { Link, match, useLocation } from "./router";
import { SignIn } from "./signin/SignIn";
import { CustomersView } from "./customers/CustomersView";
import { Busy } from "./ui/parts";
import { usePendingCount } from "./actions/usePendingCount";

// The views a CSM opens less often at start load on first use.
const CustomerView = lazy(() => import("./customer/CustomerView"));
const ChatView = lazy(() => import("./chat/ChatView"));
const ActionsView = lazy(() => import("./actions/ActionsView"));
const SettingsView = lazy(() => import("./settings/SettingsView"));

export function App() {
  const session = useAuthState();
  return (
    <SessionContext.Provider value={session}>
      {!session.ready ? <Busy label="Starting…" /> : session.user ? <Workspace /> : <SignIn />}
    </SessionContext.Provider>
  );
}

const NAV = [
  { to: "/customers", label: "Customers" },
  { to: "/chat", label: "Chat" },
  { to: "/actions", label: "Actions" },
  { to: "/settings", label: "Settings" },
];

function Workspace() {
  const { path } = useLocation();
  const { user } = useSession();
  const pending = usePendingCount(path);
  const main = useRef<HTMLElement>(null);
  // A new view: its heading gets the focus, so a screen reader starts there.
  useEffect(() => {
    main.current?.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
  }, [path]);
  return (
    <div className="workspace">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/customers" className="brand">
          CSCX
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.to}>
                <Link to={item.to} aria-current={path.startsWith(item.to) ? "page" : undefined}>
                  {item.label}
                  {item.to === "/actions" && pending > 0 && (
                    <span className="badge" aria-label={`${pending} waiting`}>
                      {pending}
                    </span>
                  )}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          <span>{user?.email}</span>
          <button type="button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main}>
        <ViewFailed path={path}>
          <Suspense fallback={<Busy label="Loading…" />}>
            <Route path={path} />
          </Suspense>
        </ViewFailed>
      </main>
    </div>
  );
}

function Route({ path }: { path: string }) {
  let params: Record<string, string> | null;
  if (path === "/" || match("/customers", path)) return <CustomersView />;
  if ((params = match("/customers/:id", path))) return <CustomerView key={params.id} customerId={params.id!} />;
  if (match("/chat", path)) return <ChatView sessionId={null} />;
  if ((params = match("/chat/:id", path))) return <ChatView sessionId={params.id!} />;
  if (match("/actions", path)) return <ActionsView />;
  if (match("/settings", path) || match("/settings/integrations", path)) return <SettingsView />;
  return (
    <section>
      <h1 tabIndex={-1}>Nothing here</h1>
      <p>
        There is no page at {path}. <Link to="/customers">Go to your customers</Link>.
      </p>
    </section>
  );
}

/** A view that failed to show (a part of the console that did not load after a new release, an
 * answer it did not expect) says so in place, under the navigation, never as a blank screen;
 * going to another path tries again. */
class ViewFailed extends Component<{ path: string; children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  componentDidUpdate(previous: { path: string }) {
    if (this.state.error && previous.path !== this.props.path) this.setState({ error: null });
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <section>
        <h1 tabIndex={-1}>This page could not be shown</h1>
        <div role="alert" className="error">
          <p>{this.state.error.message}</p>
          <button type="button" onClick={() => window.location.reload()}>
            Reload the page
          </button>
        </div>
        <p>
          <Link to="/customers">Go to your customers</Link>
        </p>
      </section>
    );
  }
}
