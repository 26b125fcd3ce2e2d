import type { Context } from '../record/context.js';
import { applyMtls, requireDemo, toYaml } from './scenario-apply.js';
import { renderPeerAuthentication } from './scenarios.js';
import type { ScenarioIO } from './canary.js';

/** `meshdemo mtls strict|permissive|clear`. */
export async function runMtls(ctx: Context<{ mode: 'STRICT' | 'PERMISSIVE' | undefined; dryRun: boolean }>, io: ScenarioIO): Promise<void> {
  const kube = await ctx.kube();
  await requireDemo(kube, ctx.options.namespace, []);
  const mode = ctx.settings.mode;
  if (ctx.settings.dryRun) {
    io.print(mode ? toYaml([renderPeerAuthentication(ctx.options.namespace, mode)]) : `would delete PeerAuthentication ${ctx.options.namespace}/default`);
    return;
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
}
