import { Command, CommanderError, Option } from 'commander';
import { ExitCode } from './core/errors.js';
import { makeRedactor, processSecrets } from './core/secrets.js';
import { register as registerUp } from './commands/up.js';
import { register as registerPlan } from './commands/plan.js';
import { register as registerStatus } from './commands/status.js';
import { register as registerDown } from './commands/down.js';
import { register as registerExpose } from './commands/expose.js';
import { register as registerIstioctl } from './commands/istioctl.js';
import { register as registerVerify } from './commands/verify.js';
import { register as registerTraffic } from './commands/traffic.js';
import { register as registerLogs } from './commands/logs.js';
import { register as registerCompletion } from './commands/completion.js';
import { register as registerDownload } from './commands/download.js';
import { register as registerOpen } from './commands/open.js';
import { register as registerCanary } from './commands/canary.js';
import { register as registerChaos } from './commands/chaos.js';
import { register as registerMtls } from './commands/mtls.js';

export function buildProgram(): Command {
  const program = new Command('meshdemo')
    .description('Put the Istio 1.8.4 service-mesh demo onto a Kubernetes cluster with one command, and take it off again.')
    .version(process.env.npm_package_version ?? '0.1.0', '--version')
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)').env('MESHDEMO_KUBECONFIG'))
    .addOption(new Option('--context <name>', 'kubeconfig context to use (default: its current context)').env('MESHDEMO_CONTEXT'))
    .addOption(new Option('-n, --namespace <ns>', 'namespace for the demo app').default('default').env('MESHDEMO_NAMESPACE'))
    .addOption(new Option('-y, --yes', 'do not ask for confirmation').env('MESHDEMO_YES'))
    .addOption(new Option('--json', 'machine-readable NDJSON events on stdout').env('MESHDEMO_JSON'))
    .addOption(new Option('--verbose', 'more output, and stack traces on errors').env('MESHDEMO_VERBOSE'))
    .addOption(new Option('--cache-dir <dir>', 'download cache (default: $XDG_CACHE_HOME/meshdemo or ~/.cache/meshdemo)').env('MESHDEMO_CACHE_DIR'))
    .addOption(new Option('--trust-cache-dir', 'use the cache dir even if others can write to it (shared CI caches)').env('MESHDEMO_TRUST_CACHE_DIR'))
    .addOption(new Option('--timeout <duration>', 'how long to wait for readiness, e.g. 90s, 10m').default('10m').env('MESHDEMO_TIMEOUT'))
    // commander's own errors (unknown command/option, missing argument) in meshdemo's one-line form, with the fix
    .configureOutput({ outputError: (str, write) => write(makeRedactor(processSecrets())(usageErrorLine(str))) })
    .addHelpText(
      'after',
      `
Examples:
  meshdemo up                      install Istio 1.8.4, the addons, the demo app; print the URLs
  meshdemo plan                    show what up would do, change nothing
  meshdemo status --json           what is installed, as one JSON object
  meshdemo expose kiali            make Kiali reachable on a NodePort (31001)
  meshdemo down --yes              remove what up created, revert what it changed
  meshdemo download                fetch and verify the Istio release into the cache (no cluster)

Exit codes: 0 ok, 1 unexpected failure, 2 bad usage or input, 3 preflight refused,
            4 timed out waiting for readiness, 5 download/verification failed,
            6 an external command failed, 130 interrupted.`,
    );
  program.exitOverride();
  for (const register of [registerUp, registerPlan, registerStatus, registerExpose, registerDown, registerIstioctl, registerVerify, registerTraffic, registerLogs, registerCompletion, registerDownload, registerOpen, registerCanary, registerChaos, registerMtls]) register(program);
  return program;
}

/** "error: unknown command 'stauts'\n(Did you mean status?)\n" → "error: unknown command 'stauts' — did you mean status? run with --help for usage\n" */
export function usageErrorLine(text: string): string {
  const [first = 'error: bad usage', ...rest] = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const suggestion = rest.map((l) => l.replace(/^\((.*)\)$/, '$1').replace(/^Did you mean/, 'did you mean')).join(' ');
  return `${first} — ${suggestion ? `${suggestion} ` : ''}run with --help for usage\n`;
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; every other commander error is bad usage
      process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return;
    }
    throw err;
  }
}

main().catch((err) => {
  process.stderr.write(makeRedactor(processSecrets())(`error: ${err instanceof Error ? err.message : String(err)}`) + '\n');
  process.exitCode = ExitCode.unexpected;
});

// `meshdemo status | head` closes the pipe early; that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
