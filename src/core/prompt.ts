import { UsageError } from './errors.js';

export interface Prompter {
  readonly interactive: boolean;
  /** Asks y/N. Without a TTY (or with --json) throws UsageError naming `flagToSkip`. */
  confirm(message: string, flagToSkip: string): Promise<boolean>;
  /** Asks for a line of text, or throws UsageError naming `flagToSkip`. */
  input(message: string, flagToSkip: string, validate?: (v: string) => true | string): Promise<string>;
}

export function createPrompter(opts: { json: boolean; isTTY: boolean }): Prompter {
  const interactive = opts.isTTY && !opts.json;
  const refuse = (flag: string, what: string): never => {
    throw new UsageError(`${what} needs an answer, but there is no terminal to ask on`, { hint: `pass ${flag}` });
  };
  return {
    interactive,
    async confirm(message, flag) {
      if (!interactive) return refuse(flag, 'confirmation');
      const { default: inquirer } = await import('inquirer');
      const answer = await inquirer.prompt<{ ok: boolean }>([{ type: 'confirm', name: 'ok', message, default: false }]);
      return answer.ok;
    },
    async input(message, flag, validate) {
      if (!interactive) return refuse(flag, message);
      const { default: inquirer } = await import('inquirer');
      const answer = await inquirer.prompt<{ value: string }>([
        { type: 'input', name: 'value', message, validate: validate ?? (() => true) },
      ]);
      return answer.value;
    },
  };
}
