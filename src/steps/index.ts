import type { Step } from '../core/step.js';
import type { UpSettings } from './settings.js';
import { preflight } from './preflight.js';
import { notImplemented } from './not-implemented.js';

/** The steps of `meshdemo up`, in order. */
export async function upSteps(settings: UpSettings): Promise<Step<UpSettings>[]> {
  const steps: Step<any>[] = [
    preflight,
    notImplemented('istio-download', 'Download Istio release'),
    notImplemented('istio-install', 'istioctl install --set profile=demo'),
    notImplemented('namespace-label', 'Label namespace for sidecar injection'),
    notImplemented('addons', 'Apply addons (Prometheus, Grafana, Jaeger, Kiali)'),
    notImplemented('dashboards', 'Expose dashboards on NodePorts'),
  ];
  if (settings.app) {
    steps.push(
      notImplemented('images', 'Build and publish the demo images'),
      notImplemented('app-deploy', 'Deploy micro-api, micro-order, micro-pay and the gateway'),
      notImplemented('gateway-url', 'Work out the gateway URL'),
    );
  }
  return steps;
}
