import { UsageError } from './errors.js';

export interface Prompter {
  readonly interactive: boolean;
  /** Asks y/N. Without a TTY (or with --json) throws UsageError naming `flagToSkip`. */
  confirm(message: string, flagToSkip: string): Promise<boolean>;
  /** Asks for a line of text, or throws UsageError naming `flagToSkip`. */
  input(message: string, flagToSkip: string, validate?: (v: string) => true | string): Promise<string>;
}

export function createPrompter(opts: { json: boolean; isTTY: boolean; terminal?: { suspend(): void; resume(): void } }): Prompter {
  const interactive = opts.isTTY && !opts.json;
  const ask = async <T>(question: object): Promise<T> => {
    const { default: inquirer } = await import('inquirer');
    opts.terminal?.suspend();
    try {
      return (await inquirer.prompt([question as any])) as T;
    } finally {
      opts.terminal?.resume();
    }
  };
  const refuse = (flag: string, what: string): never => {
    throw new UsageError(`${what} needs an answer, but there is no terminal to ask on`, { hint: `pass ${flag}` });
  };
  return {
    interactive,
    async confirm(message, flag) {
      if (!interactive) return refuse(flag, 'confirmation');
      return (await ask<{ ok: boolean }>({ type: 'confirm', name: 'ok', message, default: false })).ok;
    },
    async input(message, flag, validate) {
      if (!interactive) return refuse(flag, message);
      return (await ask<{ value: string }>({ type: 'input', name: 'value', message, validate: validate ?? (() => true) })).value;
    },
  };
}
