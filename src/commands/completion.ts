import type { Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export const SHELLS = ['bash', 'zsh', 'fish'];

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
  cmd.action(lazyAction(() => import('./completion.run.js')));
}
