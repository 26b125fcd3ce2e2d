/** The demo's services: each is built from templates/services/<name> (src/images/context.ts). */
export const SERVICES = ['micro-api', 'micro-order', 'micro-pay'] as const;
export type ServiceName = (typeof SERVICES)[number];
