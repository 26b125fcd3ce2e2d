import type { Command } from 'commander';
import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { completionScript } from '../ui/completion.js';

const SHELLS = ['bash', 'zsh', 'fish'];

export function register(program: Command): void {
  const cmd = program
    .command('completion')
    .argument('<shell>', 'the shell to complete in')
    .addHelpText(
      'after',
      `
Examples:
  source <(meshdemo completion bash)                        this shell
  meshdemo completion bash > ~/.local/share/bash-completion/completions/meshdemo
  source <(meshdemo completion zsh)                         (in ~/.zshrc)
  meshdemo completion fish > ~/.config/fish/completions/meshdemo.fish`,
    );
  cmd.registeredArguments[0].argChoices = [...SHELLS];
  cmd.action(
    action(
      (_opts, args) => {
        if (!SHELLS.includes(args[0])) throw new UsageError(`no completion for shell "${args[0]}"`, { hint: `choose one of ${SHELLS.join(', ')}` });
        return { shell: args[0] as 'bash' | 'zsh' | 'fish' };
      },
      async (ctx) => {
        process.stdout.write(completionScript(program, ctx.settings.shell));
      },
    ),
  );
}
