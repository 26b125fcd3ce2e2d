import { Command, Option } from 'commander';
import { secretSetValues } from '../core/secrets.js';
import { action } from './action.js';
import { InterruptedError } from '../core/errors.js';
import type { GlobalOptions } from '../core/options.js';
import type { Context } from '../record/context.js';
import { collect, DEFAULT_ISTIO_VERSION, parseUpSettings, type UpSettings } from '../settings.js';
import { runSteps } from '../core/runner.js';
import { requireWritableCacheDir } from '../core/cache-dir.js';
import { upSteps, LOCAL_STEP_IDS } from '../steps/index.js';
import { renderedApp } from '../steps/render.js';
import { summarize } from './summary.js';
import { sendTraffic } from './traffic.js';
import { decideLocalCluster } from '../kind/decide.js';
import { NODE_KUBERNETES_VERSION } from '../kind/pins.js';

/** The options `up` and `plan` share: everything that decides what up does. */
export function addUpOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--istio-version <v>', 'Istio release to install').default(DEFAULT_ISTIO_VERSION).env('MESHDEMO_ISTIO_VERSION'))
    .addOption(new Option('--istio-mirror <url>', 'where releases are downloaded from').env('MESHDEMO_ISTIO_MIRROR'))
    .addOption(new Option('--istio-sha256 <hex>', 'pinned sha256 of the release archive').env('MESHDEMO_ISTIO_SHA256'))
    .addOption(new Option('--istio-archive <path>', 'use a local release archive instead of downloading').env('MESHDEMO_ISTIO_ARCHIVE'))
    .option('--istio-set <key=value>', 'extra istioctl --set value (repeatable)', collect, [])
    .option('--reinstall', 'run istioctl install even when the same version is installed')
    .option('--no-app', 'stop after Istio, the addons and the dashboards')
    .addOption(new Option('--addons <list>', 'addons to apply, comma-separated').env('MESHDEMO_ADDONS'))
    .option('--node-port <name=port>', 'dashboard node ports, e.g. kiali=31001,grafana=31002 (repeatable)', collect, [])
    .addOption(new Option('--node-address <addr>', 'address printed in URLs (default: first node ExternalIP, else InternalIP)').env('MESHDEMO_NODE_ADDRESS'))
    .addOption(new Option('--registry <host[:port]/path>', 'registry to push the demo images to').env('MESHDEMO_REGISTRY'))
    .addOption(new Option('--base-image <image>', 'base image for the demo services').env('MESHDEMO_BASE_IMAGE'))
    .option('--services-dir <dir>', 'build the demo services from this edited copy of templates/services')
    .option('--skip-build', 'use prebuilt images given with --image')
    .option('--image <service=ref>', 'prebuilt image for a service (repeatable)', collect, [])
    .option('--render [dir]', 'write the app manifests instead of applying them')
    .option('--verify', 'send sample orders through the gateway at the end')
    .option('--local', 'create (or reuse) the local kind cluster even when a kubeconfig exists')
    .addOption(new Option('--cluster-name <name>', 'name of the local kind cluster (context kind-<name>)').default('meshdemo').env('MESHDEMO_CLUSTER_NAME'))
    .addOption(new Option('--kind-mirror <url>', 'where kind releases are downloaded from').env('MESHDEMO_KIND_MIRROR'))
    .addOption(new Option('--kind-sha256 <hex>', 'pinned sha256 of the kind binary').env('MESHDEMO_KIND_SHA256'))
    .addOption(new Option('--gateway-node-port <port>', 'ingress gateway http2 node port on a kind cluster (mapped to 127.0.0.1 on the local cluster)').default('31080').env('MESHDEMO_GATEWAY_NODE_PORT'))
    .option('--traffic <duration>', 'then send steady orders through the gateway this long (as meshdemo traffic --duration), e.g. 5m');
}

export function register(program: Command): void {
  const cmd = program
    .command('up');
  addUpOptions(cmd)
    .option('--dry-run', 'show what would run, change nothing')
    .addHelpText(
      'after',
      `
Examples:
  meshdemo up                               (no cluster yet: creates the local kind cluster "meshdemo")
  meshdemo up --local --cluster-name mesh   (a local kind cluster even though a kubeconfig exists)
  meshdemo up --registry 127.0.0.1:5000/micro-service
  meshdemo up --context kind-mesh           (kind: images are loaded with kind load)
  meshdemo up --no-app --yes --json         (CI: no prompts, NDJSON progress)
  meshdemo up --istio-archive ./istio-1.8.4-linux-amd64.tar.gz

The local kind cluster needs an amd64 Docker engine (Istio 1.8.4 has no arm64 images): an arm64/aarch64 engine,
Docker 25.0.0 (its docker save breaks kind load) and Podman's docker shim are refused with exit 3 before anything
is downloaded or created. Istio's and the addons' images are pulled once on the host and loaded into the node;
on Docker's containerd image store, an image kind cannot import is loaded as the node's platform alone (docker save
--platform, Docker 28+). On Docker 27+ a missing kind network is created IPv4-only first (kind v0.17.0's IPv6
network fails without ip6tables NAT); an existing one is reused.`,
    )
    .action(
      action<UpSettings>(buildUpSettings, async (ctx) => {
        for (const value of secretSetValues(ctx.settings.istioSet)) ctx.secrets.add(value);
        if (ctx.settings.render === true) {
          // the YAML alone on stdout, so that `up --render > app.yaml` is a manifest file
          ctx.ui.print(await renderedApp(ctx));
          ctx.ui.result(true, { rendered: 'stdout' });
          return;
        }
        if (!ctx.dryRun && !ctx.settings.render) requireWritableCacheDir(ctx.options.cacheDir);
        const steps = await upSteps(ctx.settings, ctx.settings.local?.context ?? (await contextOrNothing(ctx)));
        const local = ctx.settings.local;
        if (local) ctx.log.info(`working on the local kind cluster "${local.name}" (context ${local.context}): ${local.reason}`);
        let confirmed = false;
        const confirmOnce = async () => {
          if (!confirmed) await confirmChanges(ctx);
          confirmed = true;
        };
        // the local cluster first: the cluster lock lives in the cluster, so it is taken once the cluster exists
        const outcomes = await runSteps(steps.filter((s) => LOCAL_STEP_IDS.has(s.id)), ctx, { beforeFirstChange: confirmOnce });
        outcomes.push(
          ...(await runSteps(steps.filter((s) => !LOCAL_STEP_IDS.has(s.id)), ctx, {
            beforeFirstChange: async () => {
              await confirmOnce();
              if (!ctx.settings.render) {
                await ctx.lock.acquire(); // src/record/lock.ts: one up/down at a time per cluster
                await ctx.inventory(); // a corrupted record is refused before anything changes, not half-way
              }
            },
          })),
        );
        await summarize(ctx, outcomes);
        if (ctx.settings.trafficMs !== undefined && !ctx.dryRun) {
          await ctx.lock.release(); // the cluster is not changed any more: let other up/down runs in
          await sendTraffic({ ...ctx, settings: { nodeAddress: ctx.settings.nodeAddress, durationMs: ctx.settings.trafficMs, rate: 10, concurrency: 4 } }, { asResult: false });
        }
      }, { dryRun: (o) => Boolean(o.dryRun), context: localContext }),
    );
}

/** On the local kind cluster (src/kind/decide.ts) up, plan and download work on its context, kind-<name>. */
export const localContext = (settings: { local?: { context: string } }): string | undefined => settings.local?.context;

/** up's and plan's settings, with the local kind cluster decided (src/kind/decide.ts). */
export async function buildUpSettings(opts: Record<string, any>, _args: string[], global: GlobalOptions): Promise<UpSettings> {
  const settings = parseUpSettings(opts);
  if (settings.render) return settings;
  settings.local = decideLocalCluster(settings, global);
  return settings;
}

/** The context up will work on, if the kubeconfig names one (errors are left for the preflight step to report). */
export async function contextOrNothing(ctx: Context<UpSettings>): Promise<string | undefined> {
  return ctx.kube().then((k) => k.contextName, () => undefined);
}

async function confirmChanges(ctx: Context<UpSettings>): Promise<void> {
  if (ctx.options.yes) return;
  const local = ctx.settings.local;
  if (local && !local.exists) {
    const ok = await ctx.prompt.confirm(
      `meshdemo will create a local kind cluster "${local.name}" (Kubernetes ${NODE_KUBERNETES_VERSION}, context ${local.context}; ${local.reason}) and install the demo on it. Proceed?`,
      '--yes',
    );
    if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
    return;
  }
  const kube = await ctx.kube();
  const ok = await ctx.prompt.confirm(`meshdemo will change cluster ${kube.server} (context "${kube.contextName}"). Proceed?`, '--yes');
  if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
}
