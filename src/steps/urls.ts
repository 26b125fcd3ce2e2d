import type { Context } from '../core/step.js';

/** Gateway and dashboard URLs, where they can be computed (filled in by the dashboards and gateway steps). */
export async function collectUrls(_ctx: Context<any>): Promise<Record<string, string>> {
  return {};
}
