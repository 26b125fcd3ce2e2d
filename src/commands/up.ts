import { Command, Option } from 'commander';
import { DEFAULT_ISTIO_VERSION } from '../core/names.js';
import { collect } from '../core/options.js';
import { lazyAction } from './lazy-action.js';

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
    .action(lazyAction(() => import('./up.run.js')));
}
