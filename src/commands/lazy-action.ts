/** What a command's body module exports: its commander action, built by action() (./action.ts). */
export interface CommandBody {
  run: (...received: unknown[]) => Promise<void>;
}

/**
 * The one lazy-load boundary between a command's definition (<name>.ts: arguments, options, help text) and its body
 * (<name>.run.ts: what it does, with action.ts's plumbing): `--help` and usage errors load the definition alone, the
 * body is imported when the action runs.
 */
export function lazyAction(load: () => Promise<CommandBody>): (...received: unknown[]) => Promise<void> {
  return async (...received) => (await load()).run(...received);
}
