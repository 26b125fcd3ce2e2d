import { UsageError } from '../core/errors.js';
import type { Context } from '../record/context.js';
import type { ServiceName } from '../settings.js';
import { applyService, planService, requireDemo, scenarioState, toYaml } from './scenario-apply.js';
import { measure, type ScenarioCommonSettings } from './scenario-run.js';
import { canaryChecks, formatCheck, type ShareCheck } from './scenario-verify.js';
import { formatSummary } from './traffic.js';
import type { ServiceScenarios } from './scenarios.js';

export interface CanarySettings extends ScenarioCommonSettings {
  service: ServiceName;
  change?: { weight: number; header?: { name: string; value: string } } | 'promote' | 'reset';
}

export interface ScenarioIO {
  acquireLock(): Promise<void>;
  /** The command's output (stdout). */
  print(line: string): void;
  /** Progress (stderr). */
  info(line: string): void;
}

/** The service's scenarios after this canary command, from the recorded ones. */
function nextState(current: ServiceScenarios | undefined, change: CanarySettings['change']): ServiceScenarios | undefined {
  if (change === undefined) return current;
  if (change === 'reset') return { ...current, canary: undefined };
  if (change === 'promote') return { ...current, canary: { weight: 100, promoted: true } };
  return { ...current, canary: { weight: change.weight, ...(change.header ? { header: change.header } : {}) } };
}

/** `meshdemo canary`: applies the change (or shows it with --dry-run), then with --verify measures the share per version. */
export async function runCanary(ctx: Context<CanarySettings>, io: ScenarioIO): Promise<{ lines: string[]; checks: ShareCheck[] }> {
  const { service, change } = ctx.settings;
  const kube = await ctx.kube();
  const namespace = ctx.options.namespace;
  await requireDemo(kube, namespace, [service]);
  const inventory = await ctx.inventory();
  const current = scenarioState(inventory).services[service];
  const next = nextState(current, change);
  if (change === undefined && !current?.canary) throw new UsageError(`no canary of ${service} is active to verify`, { hint: `start one: meshdemo canary ${service} --weight v2=20 --verify` });
  if (ctx.settings.dryRun) {
    io.print(toYaml(await planService(kube, namespace, service, next)));
    return { lines: [], checks: [] };
  }
  if (change !== undefined) {
    await io.acquireLock();
    await applyService(ctx, service, next, { deadline: Date.now() + ctx.options.timeoutMs, onChange: io.info });
    const c = next?.canary;
    io.print(
      !c
        ? `canary ${service}: reset — ${service === 'micro-api' ? 'the gateway routes to micro-api again' : `no VirtualService or DestinationRule for ${service}`}, ${service}-v2 removed`
        : c.promoted
          ? `canary ${service}: promoted — all requests to v2 (DestinationRule ${service}: subset v2 only)`
          : `canary ${service}: v1 ${100 - c.weight}%, v2 ${c.weight}%${c.header ? `; ${c.header.name}: ${c.header.value} → v2` : ''} (DestinationRule ${service} subsets v1/v2, VirtualService ${service === 'micro-api' ? 'micro-gateway' : service})`,
    );
  }
  if (!ctx.settings.verify || !next?.canary) return { lines: [], checks: [] };
  const { url, summary } = await measure(ctx);
  const weights: Record<string, number> = next.canary.promoted ? { v2: 100 } : { v1: 100 - next.canary.weight, v2: next.canary.weight };
  const checks = canaryChecks(summary, service, weights);
  const lines = [`verify: ${summary.sent} orders through ${url}, ${summary.ok} ok`, ...checks.map(formatCheck)];
  for (const l of [...formatSummary(summary).slice(0, 3), ...lines]) io.print(l);
  return { lines, checks };
}
