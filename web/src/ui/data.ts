// Loading what a view shows: one object, or a list page by page. Each view builds its own data
// hooks on these; nothing is shared between views but the API.

import { type DependencyList, useCallback, useEffect, useRef, useState } from "react";
import type { Answer } from "../api/client";
import type { Page } from "../api/types";

export interface Resource<T> {
  data: T | undefined;
  /** The object's version, for If-Match. */
  etag: string | null;
  error: Error | null;
  loading: boolean;
  reload: () => Promise<void>;
  /** Put an answer in place (after a change the server answered with the new object). */
  set: (answer: Answer<T>) => void;
}

export function useResource<T>(load: () => Promise<Answer<T>>, deps: DependencyList): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined; etag: string | null; error: Error | null; loading: boolean }>({
    data: undefined,
    etag: null,
    error: null,
    loading: true,
  });
  const generation = useRef(0);
  // The caller's deps say when to load again.
  const run = useCallback(load, deps);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const answer = await run();
      if (mine === generation.current) setState({ data: answer.data, etag: answer.etag, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, error: error as Error, loading: false }));
    }
  }, [run]);
  useEffect(() => {
    setState({ data: undefined, etag: null, error: null, loading: true });
    void reload();
  }, [reload]);
  const set = useCallback(
    (answer: Answer<T>) => setState({ data: answer.data, etag: answer.etag, error: null, loading: false }),
    [],
  );
  return { ...state, reload, set };
}

export interface Pages<T> {
  items: T[];
  error: Error | null;
  loading: boolean;
  /** 1-based number of the page shown. */
  page: number;
  hasNext: boolean;
  hasPrevious: boolean;
  next: () => void;
  previous: () => void;
  reload: () => Promise<void>;
}

/** A cursor-paged list shown one page at a time (Previous / Next); `load` changes start at page 1. */
export function usePages<T>(load: (cursor: string | null) => Promise<Answer<Page<T>>>, deps: DependencyList): Pages<T> {
  // cursors[i] is the cursor that loads page i + 1 (null for the first).
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [state, setState] = useState<{ items: T[]; next: string | null; error: Error | null; loading: boolean }>({
    items: [],
    next: null,
    error: null,
    loading: true,
  });
  const generation = useRef(0);
  // The caller's deps say when to load again.
  const run = useCallback(load, deps);
  const fetchPage = useCallback(
    async (cursor: string | null) => {
      const mine = ++generation.current;
      setState((s) => ({ ...s, loading: true, error: null }));
      try {
        const { data } = await run(cursor);
        if (mine === generation.current)
          setState({ items: data.items, next: data.next_cursor, error: null, loading: false });
      } catch (error) {
        if (mine === generation.current) setState((s) => ({ ...s, error: error as Error, loading: false }));
      }
    },
    [run],
  );
  useEffect(() => {
    setCursors([null]);
    void fetchPage(null);
  }, [fetchPage]);
  const current = cursors[cursors.length - 1] ?? null;
  return {
    items: state.items,
    error: state.error,
    loading: state.loading,
    page: cursors.length,
    hasNext: state.next !== null,
    hasPrevious: cursors.length > 1,
    next: () => {
      if (state.next === null) return;
      setCursors((c) => [...c, state.next]);
      void fetchPage(state.next);
    },
    previous: () => {
      if (cursors.length < 2) return;
      const earlier = cursors.slice(0, -1);
      setCursors(earlier);
      void fetchPage(earlier[earlier.length - 1] ?? null);
    },
    reload: () => fetchPage(current),
  };
}

export interface Growing<T> {
  items: T[];
  error: Error | null;
  loading: boolean;
  hasMore: boolean;
  more: () => void;
  reload: () => Promise<void>;
}

/** A cursor-paged list that grows with "Show more" (side lists: sessions, tasks, contracts). */
export function useGrowingList<T>(
  load: (cursor: string | null) => Promise<Answer<Page<T>>>,
  deps: DependencyList,
): Growing<T> {
  const [state, setState] = useState<{ items: T[]; next: string | null; error: Error | null; loading: boolean }>({
    items: [],
    next: null,
    error: null,
    loading: true,
  });
  const generation = useRef(0);
  // The caller's deps say when to load again.
  const run = useCallback(load, deps);
  const fetchFrom = useCallback(
    async (cursor: string | null, keep: T[]) => {
      const mine = ++generation.current;
      setState((s) => ({ ...s, loading: true, error: null }));
      try {
        const { data } = await run(cursor);
        if (mine === generation.current)
          setState({ items: [...keep, ...data.items], next: data.next_cursor, error: null, loading: false });
      } catch (error) {
        if (mine === generation.current) setState((s) => ({ ...s, error: error as Error, loading: false }));
      }
    },
    [run],
  );
  useEffect(() => {
    setState({ items: [], next: null, error: null, loading: true });
    void fetchFrom(null, []);
  }, [fetchFrom]);
  return {
    ...state,
    hasMore: state.next !== null,
    more: () => {
      if (state.next !== null) void fetchFrom(state.next, state.items);
    },
    reload: () => fetchFrom(null, []),
  };
}
