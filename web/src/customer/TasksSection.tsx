// A customer's tasks: the CSM's own and those the agent created once approved.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { ApiError, newIdempotencyKey } from "../api/client";
import { tasks } from "../api/endpoints";
import type { Priority, Task } from "../api/types";
import { useGrowingList } from "../ui/data";
import { day } from "../ui/format";
import { Busy, ConfirmButton, Empty, ErrorMessage, Field, etagOf } from "../ui/parts";

export function TasksSection({ customerId }: { customerId: string }) {
  const list = useGrowingList((cursor) => tasks.list({ customer_id: customerId, cursor, limit: 25 }), [customerId]);
  const [shown, setShown] = useState<Task[]>([]);
  useEffect(() => setShown(list.items), [list.items]);
  const open = shown.filter((t) => t.status === "open");
  const done = shown.filter((t) => t.status === "done");

  const replace = (task: Task) => setShown((all) => all.map((t) => (t.id === task.id ? task : t)));
  return (
    <section className="panel" aria-labelledby="tasks">
      <h2 id="tasks">Tasks</h2>
      <NewTask customerId={customerId} onCreated={(task) => setShown((all) => [task, ...all])} />
      <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
      {list.loading && shown.length === 0 ? (
        <Busy label="Loading tasks…" />
      ) : shown.length === 0 ? (
        <Empty>No tasks for this customer.</Empty>
      ) : (
        <>
          <TaskList label="Open tasks" tasks={open} onChanged={replace} onDeleted={(id) => setShown((all) => all.filter((t) => t.id !== id))} />
          {done.length > 0 && (
            <details>
              <summary>{done.length} done</summary>
              <TaskList label="Done tasks" tasks={done} onChanged={replace} onDeleted={(id) => setShown((all) => all.filter((t) => t.id !== id))} />
            </details>
          )}
        </>
      )}
      {list.hasMore && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          Show more tasks
        </button>
      )}
    </section>
  );
}

function TaskList(props: { label: string; tasks: Task[]; onChanged: (task: Task) => void; onDeleted: (id: string) => void }) {
  return (
    <ul className="tasks" aria-label={props.label}>
      {props.tasks.map((task) => (
        <TaskItem key={task.id} task={task} onChanged={props.onChanged} onDeleted={() => props.onDeleted(task.id)} />
      ))}
    </ul>
  );
}

function TaskItem({ task, onChanged, onDeleted }: { task: Task; onChanged: (task: Task) => void; onDeleted: () => void }) {
  const [error, setError] = useState<Error | null>(null);
  // The box shows the click at once; the server's answer then confirms it or puts it back.
  const [ticking, setTicking] = useState<boolean | null>(null);
  const done = ticking ?? task.status === "done";
  const toggle = async () => {
    setError(null);
    setTicking(!done);
    try {
      onChanged((await tasks.update(task.id, { status: done ? "open" : "done" }, etagOf(task))).data);
    } catch (failure) {
      setError(failure as Error);
    } finally {
      setTicking(null);
    }
  };
  const remove = async () => {
    try {
      await tasks.remove(task.id);
      onDeleted();
    } catch (failure) {
      setError(failure as Error);
    }
  };
  return (
    <li className={`task priority-${task.priority}`}>
      <label className="check">
        <input type="checkbox" checked={done} disabled={ticking !== null} onChange={() => void toggle()} />
        <span>{task.title}</span>
      </label>
      <span className="muted">
        {task.due_date ? `due ${day(task.due_date)}` : "no due date"} · {task.priority} priority
        {task.source === "agent" && " · created by the agent"}
      </span>
      <ConfirmButton
        label="Delete"
        name={`Delete “${task.title}”`}
        question={`Delete “${task.title}”?`}
        confirmLabel="Delete task"
        onConfirm={remove}
      />
      <ErrorMessage error={error} />
    </li>
  );
}

function NewTask({ customerId, onCreated }: { customerId: string; onCreated: (task: Task) => void }) {
  const [title, setTitle] = useState("");
  const [due, setDue] = useState("");
  const [priority, setPriority] = useState<Priority>("medium");
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const key = useRef(newIdempotencyKey());
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const answer = await tasks.create(
        { title: title.trim(), customer_id: customerId, due_date: due || null, priority },
        key.current,
      );
      onCreated(answer.data);
      setTitle("");
      setDue("");
      key.current = newIdempotencyKey();
    } catch (failure) {
      setError(failure as Error);
    } finally {
      setBusy(false);
    }
  };
  const errors = error instanceof ApiError ? error.fieldErrors : {};
  return (
    <form className="inline-form" onSubmit={submit} aria-label="New task">
      <Field label="New task" error={errors.title}>
        {(p) => <input {...p} required maxLength={500} value={title} onChange={(e) => setTitle(e.target.value)} />}
      </Field>
      <Field label="Due" error={errors.due_date}>
        {(p) => <input {...p} type="date" value={due} onChange={(e) => setDue(e.target.value)} />}
      </Field>
      <Field label="Priority">
        {(p) => (
          <select {...p} value={priority} onChange={(e) => setPriority(e.target.value as Priority)}>
            <option value="low">Low</option>
            <option value="medium">Medium</option>
            <option value="high">High</option>
          </select>
        )}
      </Field>
      <button type="submit" disabled={busy || !title.trim()}>
        Add task
      </button>
      {!errors.title && <ErrorMessage error={error} />}
    </form>
  );
}
