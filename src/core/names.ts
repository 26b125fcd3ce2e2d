/**
 * The demo's names and defaults that a command's definition shows in its help (src/commands/<name>.ts): constants
 * only, so that `--help` loads nothing else. settings.ts and demo/ use them from here.
 */

export const DEFAULT_ISTIO_VERSION = '1.8.4';

export interface Dashboard {
  name: string;
  service: string;
  /** The Service port that gets the node port: by name, else the first port. */
  portName?: string;
  path: string;
  defaultNodePort: number;
  addon: string;
}

/** kiali 31001 as in the tutorial; the others follow it. */
export const DASHBOARDS: Record<string, Dashboard> = {
  kiali: { name: 'kiali', service: 'kiali', portName: 'http', path: '/kiali', defaultNodePort: 31001, addon: 'kiali' },
  grafana: { name: 'grafana', service: 'grafana', path: '/', defaultNodePort: 31002, addon: 'grafana' },
  prometheus: { name: 'prometheus', service: 'prometheus', portName: 'http', path: '/', defaultNodePort: 31003, addon: 'prometheus' },
  // the 1.8.4 Jaeger addon serves its UI under QUERY_BASE_PATH=/jaeger (samples/addons/jaeger.yaml): / is a 404
  tracing: { name: 'tracing', service: 'tracing', portName: 'http-query', path: '/jaeger', defaultNodePort: 31004, addon: 'jaeger' },
  zipkin: { name: 'zipkin', service: 'zipkin', portName: 'http-query', path: '/zipkin/', defaultNodePort: 31005, addon: 'zipkin' },
};

/** What `meshdemo logs` prints the logs of: the three services and the ingress gateway. */
export const LOG_TARGETS = ['micro-api', 'micro-order', 'micro-pay', 'gateway'] as const;
export type LogTarget = (typeof LOG_TARGETS)[number];
