import { Command, CommanderError, Help, Option } from 'commander';
import { ExitCode } from './core/errors.js';
import { makeRedactor, processSecrets } from './core/secrets.js';

/**
 * The first lazy-load boundary: every command is listed here with its term and description (enough for `--help` and
 * for "did you mean"), and its definition (src/commands/<name>.ts: arguments, options, help text) is loaded only when
 * the command line names it. The second is in each definition: its body (<name>.run.ts, with the plumbing of
 * action.ts) is loaded only when the action runs (src/commands/lazy-action.ts), so `<command> --help` loads neither.
 */
const COMMANDS: Array<{ name: string; term: string; description: string; load: () => Promise<{ register(program: Command): void }> }> = [
  { name: 'up', term: 'up [options]', description: 'install Istio 1.8.4 (demo profile), the addons, the dashboards and the demo app; safe to re-run', load: () => import('./commands/up.js') },
  { name: 'plan', term: 'plan [options]', description: 'list the steps up would run and which are already satisfied; changes nothing', load: () => import('./commands/plan.js') },
  { name: 'status', term: 'status [options]', description: 'show what meshdemo finds on the cluster: version, Istio, injection, addons, dashboards, app, URLs (read-only)', load: () => import('./commands/status.js') },
  { name: 'expose', term: 'expose [options] <dashboard>', description: 'make a dashboard reachable from outside the cluster (a NodePort, or a local port-forward)', load: () => import('./commands/expose.js') },
  { name: 'down', term: 'down [options]', description: 'remove what up created and revert what it changed, nothing else', load: () => import('./commands/down.js') },
  { name: 'istioctl', term: 'istioctl [options] [args...]', description: 'run the cached istioctl with the same --kubeconfig/--context; its exit code is passed through', load: () => import('./commands/istioctl.js') },
  { name: 'verify', term: 'verify [options]', description: 'send sample orders through the gateway: success, latency, which micro-order pods answered', load: () => import('./commands/verify.js') },
  { name: 'traffic', term: 'traffic [options]', description: 'send steady orders through the gateway so Kiali and Jaeger fill; a summary with latency, load balancing and a trace link', load: () => import('./commands/traffic.js') },
  { name: 'logs', term: 'logs [options] <service>', description: "print the app's (or with --proxy the Envoy sidecar's) logs of every pod of a service, each line prefixed with its pod", load: () => import('./commands/logs.js') },
  { name: 'completion', term: 'completion <shell>', description: 'print a shell completion script (commands, flags, dashboard and service names)', load: () => import('./commands/completion.js') },
  { name: 'download', term: 'download [options]', description: 'fetch and verify into the cache what up needs (the Istio release, and kind when up would create the local cluster); no cluster needed, a second run downloads nothing', load: () => import('./commands/download.js') },
  { name: 'open', term: 'open [options] [dashboard]', description: 'open a dashboard (or a trace) in the browser: its NodePort URL, or a port-forward when that is not reachable', load: () => import('./commands/open.js') },
  { name: 'canary', term: 'canary [options] <service>', description: 'canary release: deploy <service>-v2, split traffic by weight (DestinationRule subsets, weighted VirtualService), verify the split with traffic', load: () => import('./commands/canary.js') },
  { name: 'chaos', term: 'chaos [options] <kind> [service] [value]', description: "fault injection, timeouts, retries and the tutorial's circuit breaker on a demo service (VirtualService, DestinationRule); clear removes them", load: () => import('./commands/chaos.js') },
  { name: 'mtls', term: 'mtls [options] <mode>', description: 'mutual TLS for the demo namespace: PeerAuthentication "default" with mtls.mode STRICT or PERMISSIVE', load: () => import('./commands/mtls.js') },
];

/** The commands argv names (`completion` describes them all); their modules, loaded. */
async function loadNamed(argv: string[]): Promise<Map<string, { register(program: Command): void }>> {
  const words = new Set(argv.slice(2));
  const named = words.has('completion') ? COMMANDS : COMMANDS.filter((c) => words.has(c.name));
  return new Map(await Promise.all(named.map(async (c) => [c.name, await c.load()] as const)));
}

export async function buildProgram(argv = process.argv): Promise<Command> {
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
  program.configureHelp({ subcommandTerm: (cmd) => COMMANDS.find((c) => c.name === cmd.name())?.term ?? new Help().subcommandTerm(cmd) });
  const loaded = await loadNamed(argv);
  for (const { name, description } of COMMANDS) {
    const module = loaded.get(name);
    if (module) module.register(program);
    // a command the command line does not name: listed in the help, never run
    else program.command(name).description(description);
    program.commands.at(-1)!.description(description);
  }
  return program;
}

/** "error: unknown command 'stauts'\n(Did you mean status?)\n" → "error: unknown command 'stauts' — did you mean status? run with --help for usage\n" */
export function usageErrorLine(text: string): string {
  const [first = 'error: bad usage', ...rest] = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const suggestion = rest.map((l) => l.replace(/^\((.*)\)$/, '$1').replace(/^Did you mean/, 'did you mean')).join(' ');
  return `${first} — ${suggestion ? `${suggestion} ` : ''}run with --help for usage\n`;
}

export async function main(argv = process.argv): Promise<void> {
  const program = await buildProgram(argv);
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
