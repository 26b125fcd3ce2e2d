import type { Context } from '../record/context.js';
import { applyMtls, requireDemo, runPlaintextProbe, toYaml } from './scenario-apply.js';
import { measure, type ScenarioCommonSettings } from './scenario-run.js';
import { formatCheck, type EffectCheck } from './scenario-verify.js';
import { formatSummary } from './traffic.js';
import { renderPeerAuthentication, type ProbeOutcome } from './scenarios.js';
import type { ScenarioIO } from './canary.js';

export interface MtlsSettings extends ScenarioCommonSettings {
  mode: 'STRICT' | 'PERMISSIVE' | undefined;
}

/** What a plaintext call from a pod without a sidecar comes to under each mode (PeerAuthentication.MutualTLS.Mode). */
const PLAINTEXT_EXPECTED: Record<'STRICT' | 'PERMISSIVE', { outcome: ProbeOutcome; words: string }> = {
  STRICT: { outcome: 'reset', words: 'refused (connection reset)' },
  PERMISSIVE: { outcome: 'answered', words: 'answered' },
};

/** `meshdemo mtls strict|permissive|clear`; with --verify, shows what the mode does to a plaintext call and to the mesh path. */
export async function runMtls(ctx: Context<MtlsSettings>, io: ScenarioIO): Promise<{ lines: string[]; checks: EffectCheck[] }> {
  const kube = await ctx.kube();
  await requireDemo(kube, ctx.options.namespace, ['micro-api']);
  const mode = ctx.settings.mode;
  if (ctx.settings.dryRun) {
    io.print(mode ? toYaml([renderPeerAuthentication(ctx.options.namespace, mode)]) : `would delete PeerAuthentication ${ctx.options.namespace}/default`);
    return { lines: [], checks: [] };
  }
  await io.acquireLock();
  await applyMtls(ctx, mode, io.info);
  io.print(
    mode === 'STRICT'
      ? `mtls strict: sidecars in ${ctx.options.namespace} accept only mutual TLS — a plaintext call from a pod without a sidecar is refused, the mesh path still answers`
      : mode === 'PERMISSIVE'
        ? `mtls permissive: sidecars in ${ctx.options.namespace} accept mutual TLS and plaintext`
        : `mtls: PeerAuthentication ${ctx.options.namespace}/default removed (the mesh default applies again)`,
  );
  if (!ctx.settings.verify || !mode) return { lines: [], checks: [] };
  const expected = PLAINTEXT_EXPECTED[mode];
  const probe = await runPlaintextProbe(ctx, expected.outcome, { deadline: Date.now() + ctx.options.timeoutMs, onChange: io.info });
  const { url, summary } = await measure(ctx);
  const checks: EffectCheck[] = [
    { label: 'plaintext, no sidecar', expected: expected.words, measured: probe.message, ok: probe.outcome === expected.outcome },
    { label: 'mesh path (gateway)', expected: `all ${summary.sent} orders answered`, measured: `${summary.ok}/${summary.sent} answered`, ok: summary.sent > 0 && summary.ok === summary.sent },
  ];
  const lines = [`verify: a pod without a sidecar called micro-api in plaintext; ${summary.sent} orders through ${url}`, ...checks.map(formatCheck)];
  for (const l of [...formatSummary(summary).slice(0, 3), ...lines]) io.print(l);
  return { lines, checks };
}
