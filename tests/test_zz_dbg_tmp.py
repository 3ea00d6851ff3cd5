from tests.test_google_clients import *  # noqa
import time as _t

@pytest.mark.parametrize("n", range(6))
def test_debug(google_standin, alice, n):
    connect(alice)
    set_expiry(alice, datetime.now(UTC) + timedelta(seconds=90))
    old = current_access_token(google_standin)
    start = threading.Barrier(10)
    out = []
    orig_refresh = tokens._refresh
    def spy(repo, stored):
        t0 = _t.monotonic()
        r = orig_refresh(repo, stored)
        out.append(("refresh", "new" if r != old else "old", round(_t.monotonic()-t0, 2)))
        return r
    tokens._refresh = spy
    def call(i):
        start.wait()
        t0 = _t.monotonic()
        try:
            tok = tokens.access_token(Repository(alice.uid))
            out.append((i, "new" if tok != old else "old", round(_t.monotonic()-t0, 2)))
        except BaseException as e:
            out.append((i, repr(e), round(_t.monotonic()-t0, 2)))
    ths = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    [t.start() for t in ths]; [t.join() for t in ths]
    tokens._refresh = orig_refresh
    print("RESULT", n, sorted(map(str, out)), len(google_standin.requests("oauth.token")))
