import type { Command } from 'commander';
import { DEFAULT_ISTIO_VERSION } from '../core/names.js';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('istioctl')
    .argument('[args...]', 'arguments for istioctl (put them after --)')
    .option('--print-path', 'print the directory holding istioctl (for export PATH=…)')
    .option('--istio-version <v>', 'which cached release', DEFAULT_ISTIO_VERSION)
    .allowUnknownOption()
    .addHelpText('after', '\nExamples:\n  meshdemo istioctl -- analyze -n default\n  meshdemo istioctl -- proxy-status\n  export PATH="$(meshdemo istioctl --print-path):$PATH"')
    .action(lazyAction(() => import('./istioctl.run.js')));
}
