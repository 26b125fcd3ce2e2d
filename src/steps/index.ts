import type { Step } from '../record/context.js';
import type { UpSettings } from '../settings.js';
import { preflight } from './preflight.js';
import { istioDownload } from './istio-download.js';
import { istioInstall } from './istio-install.js';
import { namespaceLabel } from './namespace-label.js';
import { addons } from './addons.js';
import { dashboards } from './dashboards.js';
import { dockerPreflight, images } from './images.js';
import { appDeploy } from './app-deploy.js';
import { gatewayUrlStep } from './gateway-url.js';
import { renderStep } from './render.js';
import { gatewayPorts } from './gateway-ports.js';
import { LOCAL_CLUSTER_STEPS } from './local-cluster.js';
import { istioNamespace } from './istio-namespace.js';
import { clusterImages } from './cluster-images.js';

export const LOCAL_STEP_IDS: ReadonlySet<string> = new Set(LOCAL_CLUSTER_STEPS.map((s) => s.id));

/** Docker (and kind/minikube) must answer before the first cluster change. */
const toolsPreflight: Step<UpSettings> = {
  id: 'tools-preflight',
  title: 'Preflight: docker for the demo images',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'always runs (read-only)' };
  },
  async run(ctx) {
    const version = await dockerPreflight(ctx);
    return version ? `docker ${version.server}` : 'not needed';
  },
};

/**
 * The steps of `meshdemo up`, in order. On a local cluster the local-cluster steps come first, and the others
 * (which need the cluster) report "after the local cluster is created" until it exists. `contextName` is the
 * context up works on, when known: a kind cluster also gets its gateway node ports pinned.
 */
export async function upSteps(settings: UpSettings, contextName?: string): Promise<Step<UpSettings>[]> {
  if (settings.render) return [renderStep];
  const steps: Step<any>[] = [preflight];
  if (settings.app && !settings.skipBuild) steps.push(toolsPreflight);
  const kind = settings.local || contextName?.startsWith('kind-');
  steps.push(istioDownload);
  if (kind) steps.push(clusterImages);
  steps.push(istioNamespace, istioInstall);
  if (kind) steps.push(gatewayPorts);
  steps.push(namespaceLabel, addons, dashboards);
  if (settings.app) steps.push(images, appDeploy, gatewayUrlStep);
  if (!settings.local) return steps;
  return [...LOCAL_CLUSTER_STEPS, ...steps.map((s) => (s === istioDownload ? s : afterLocalCluster(s, settings)))];
}

/** Until the local cluster exists, a step that needs it can only be planned (even a read-only one, in a dry run). */
function afterLocalCluster(step: Step<UpSettings>, settings: UpSettings): Step<UpSettings> {
  const pending = (s: UpSettings) => s.local !== undefined && s.local.exists !== true;
  return {
    ...step,
    get readOnly() {
      return step.readOnly && !pending(settings);
    },
    async check(ctx) {
      if (pending(ctx.settings)) return { satisfied: false, detail: `after kind cluster "${ctx.settings.local!.name}" is created` };
      return step.check(ctx);
    },
  };
}
