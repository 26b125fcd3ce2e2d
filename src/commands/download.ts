import { Command, Option } from 'commander';
import { DEFAULT_ISTIO_VERSION } from '../core/names.js';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('download')
    .addOption(new Option('--istio-version <v>', 'Istio release to fetch').default(DEFAULT_ISTIO_VERSION).env('MESHDEMO_ISTIO_VERSION'))
    .addOption(new Option('--istio-mirror <url>', 'where releases are downloaded from').env('MESHDEMO_ISTIO_MIRROR'))
    .addOption(new Option('--istio-sha256 <hex>', 'pinned sha256 of the release archive').env('MESHDEMO_ISTIO_SHA256'))
    .addOption(new Option('--istio-archive <path>', 'verify and unpack a local release archive instead of downloading').env('MESHDEMO_ISTIO_ARCHIVE'))
    .option('--kind', 'fetch kind too, even though a kubeconfig names a cluster (as up --local needs it)')
    .addOption(new Option('--kind-mirror <url>', 'where kind releases are downloaded from').env('MESHDEMO_KIND_MIRROR'))
    .addOption(new Option('--kind-sha256 <hex>', 'pinned sha256 of the kind binary').env('MESHDEMO_KIND_SHA256'))
    .addHelpText(
      'after',
      `
Examples:
  meshdemo download                                  (then: meshdemo up, offline)
  meshdemo download --kind                           (kind as well, for a later meshdemo up --local)
  meshdemo download --cache-dir ./ci-cache --json    (CI: fill a cache to save between jobs)
  meshdemo download --istio-archive ./istio-1.8.4-linux-amd64.tar.gz`,
    )
    .action(lazyAction(() => import('./download.run.js')));
}
