import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { completionScript } from '../ui/completion.js';
import { SHELLS } from './completion.js';

export const run = action(
  (_opts, args, _global, command) => {
    if (!SHELLS.includes(args[0])) throw new UsageError(`no completion for shell "${args[0]}"`, { hint: `choose one of ${SHELLS.join(', ')}` });
    // the script describes the whole program: every command's definition is loaded when the command line names completion
    return { shell: args[0] as 'bash' | 'zsh' | 'fish', program: command.parent! };
  },
  async (ctx) => {
    process.stdout.write(completionScript(ctx.settings.program, ctx.settings.shell));
  },
);
