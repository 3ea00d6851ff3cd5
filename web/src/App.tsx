import { Suspense, lazy, useEffect, useRef } from "react";
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
        <Suspense fallback={<Busy label="Loading…" />}>
          <Route path={path} />
        </Suspense>
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
