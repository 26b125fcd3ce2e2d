import type { Step } from '../core/step.js';
import type { UpSettings } from './settings.js';
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

/** The steps of `meshdemo up`, in order. */
export async function upSteps(settings: UpSettings): Promise<Step<UpSettings>[]> {
  if (settings.render) return [renderStep];
  const steps: Step<any>[] = [preflight];
  if (settings.app && !settings.skipBuild) steps.push(toolsPreflight);
  steps.push(istioDownload, istioInstall, namespaceLabel, addons, dashboards);
  if (settings.app) steps.push(images, appDeploy, gatewayUrlStep);
  return steps;
}
