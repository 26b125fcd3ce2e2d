/** Everything meshdemo reports goes through these events; src/ui renders them for a TTY, plain text or NDJSON. */
export type StepStatus = 'start' | 'done' | 'skipped' | 'failed';

export type MeshEvent =
  | { type: 'step'; id: string; title: string; status: StepStatus; durationMs?: number; message?: string }
  | { type: 'log'; step?: string; level: 'info' | 'warn' | 'note' | 'debug'; message: string }
  | { type: 'progress'; step?: string; received: number; total?: number; rate?: number }
  /** `traffic`: counters while it runs (phase progress), then its summary (phase summary). */
  | { type: 'traffic'; phase: 'progress' | 'summary'; [key: string]: unknown }
  /** `logs`: one line of a pod's container log. */
  | { type: 'podlog'; pod: string; container: string; line: string }
  | { type: 'result'; ok: boolean; [key: string]: unknown };

export interface EventSink {
  emit(event: MeshEvent): void;
}

/** A step's view of the event stream: its messages are tagged with its id. */
export interface StepLog {
  info(message: string): void;
  warn(message: string): void;
  note(message: string): void;
  debug(message: string): void;
  progress(received: number, total?: number, rate?: number): void;
}

export function stepLog(sink: EventSink, step?: string): StepLog {
  const log = (level: 'info' | 'warn' | 'note' | 'debug') => (message: string) =>
    sink.emit({ type: 'log', step, level, message });
  return {
    info: log('info'),
    warn: log('warn'),
    note: log('note'),
    debug: log('debug'),
    progress: (received, total, rate) => sink.emit({ type: 'progress', step, received, total, rate }),
  };
}
