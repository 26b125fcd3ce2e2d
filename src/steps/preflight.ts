import { PreflightError } from '../core/errors.js';
import type { Context, Step } from '../record/context.js';
import { clusterVersion, describePermission, missingPermissions } from '../demo/cluster-checks.js';

/**
 * Istio 1.8.4's images (proxyv2, pilot, operator) and the addons' (e.g. jaegertracing/all-in-one:1.20) exist for
 * amd64 only — Istio published arm64 images first with 1.15 — so a cluster needs at least one amd64 node. Nodes
 * that cannot be listed (no permission) or none at all are no reason to refuse.
 */
async function amd64Refusal(ctx: Context): Promise<PreflightError | undefined> {
  let nodes;
  try {
    // through the run's shared reads: the summary's node address reads the same list
    nodes = await (await ctx.reads()).list('v1', 'Node');
  } catch (err) {
    ctx.log.debug(`cannot list the nodes to check their architecture: ${(err as Error).message}`);
    return undefined;
  }
  const archs = nodes.map((n) => n.status?.nodeInfo?.architecture).filter((a): a is string => !!a);
  if (!archs.length || archs.includes('amd64')) return undefined;
  const counts = [...new Set(archs)].map((a) => `${archs.filter((x) => x === a).length}× ${a}`).join(', ');
  return new PreflightError(`the cluster has no amd64 node (${counts}): Istio 1.8.4's images exist for amd64 only (Istio publishes arm64 images from 1.15 on)`, {
    hint: 'use a cluster with amd64 nodes (--context)',
  });
}

export const preflight: Step = {
  id: 'preflight',
  title: 'Preflight: cluster, version and permissions',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'always runs (read-only)' };
  },
  async run(ctx: Context) {
    const kube = await ctx.kube();
    ctx.log.info(`cluster ${kube.server} (context "${kube.contextName}")`);
    const verdict = await clusterVersion(kube);
    if (verdict.verdict === 'refused') throw new PreflightError(verdict.message);
    if (verdict.verdict === 'untested') ctx.log.warn(verdict.message);
    const architecture = await amd64Refusal(ctx);
    if (architecture) throw architecture;
    const missing = await missingPermissions(kube, ctx.options.namespace);
    if (missing.length) {
      throw new PreflightError(`context "${kube.contextName}" lacks ${missing.length} permission(s) that up needs: ${missing.map(describePermission).join('; ')}`, {
        hint: 'ask a cluster admin for them (cluster-admin covers all) or use another --context',
      });
    }
    return `${verdict.version} at ${kube.server}, context "${kube.contextName}"`;
  },
};
