import type { Step } from '../core/step.js';
import type { UpSettings } from './settings.js';
import { preflight } from './preflight.js';
import { istioDownload } from './istio-download.js';
import { istioInstall } from './istio-install.js';
import { namespaceLabel } from './namespace-label.js';
import { addons } from './addons.js';
import { dashboards } from './dashboards.js';
import { notImplemented } from './not-implemented.js';

/** The steps of `meshdemo up`, in order. */
export async function upSteps(settings: UpSettings): Promise<Step<UpSettings>[]> {
  const steps: Step<any>[] = [preflight, istioDownload, istioInstall, namespaceLabel, addons, dashboards];
  if (settings.app) {
    steps.push(
      notImplemented('images', 'Build and publish the demo images'),
      notImplemented('app-deploy', 'Deploy micro-api, micro-order, micro-pay and the gateway'),
      notImplemented('gateway-url', 'Work out the gateway URL'),
    );
  }
  return steps;
}
