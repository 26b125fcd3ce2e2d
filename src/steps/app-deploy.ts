import { labelledByMeshdemo, MANAGED_BY, type Inventory } from '../record/inventory.js';
import type { Step } from '../record/context.js';
import { applyAll } from '../kube/apply.js';
import { describeRef, type KubeClient, type KubeObject } from '../kube/client.js';
import type { KubeReader } from '../kube/reads.js';
import { deploymentState, waitForDeployments } from '../kube/readiness.js';
import { APP_DEPLOYMENTS, legacyAppRefs, renderAppManifests } from '../demo/app-manifests.js';
import { resolveImages, resolveTarget } from '../demo/image-target.js';
import type { UpSettings } from '../settings.js';

async function desiredObjects(ctx: Parameters<Step<UpSettings>['run']>[0]): Promise<KubeObject[]> {
  return renderAppManifests(ctx.options.namespace, await resolveImages(ctx)).objects;
}

/**
 * Earlier meshdemo versions' objects (Deployments micro-order and micro-pay, VirtualService micro-api) that are still there
 * and are meshdemo's: recorded as created by up, or carrying its managed-by label. Objects of those names that
 * someone else made are left alone.
 */
async function legacyObjects(kube: KubeClient, inventory: Inventory, namespace: string, reader: KubeReader = kube): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  for (const ref of legacyAppRefs(namespace)) {
    if (!(await kube.serves(ref.apiVersion, ref.kind))) continue;
    const live = await reader.get(ref);
    if (!live) continue;
    const ours = inventory.isCreated(ref) || labelledByMeshdemo(live);
    if (ours) out.push({ ...live, apiVersion: ref.apiVersion, kind: ref.kind });
  }
  return out;
}

const portsOf = (svc: KubeObject) => (svc.spec?.ports ?? []).map((p: any) => `${p.port}/${p.protocol ?? 'TCP'}`).sort().join(',');

/**
 * Server-side apply keeps ports that another field manager owns — port 80 that an earlier meshdemo version created
 * with a plain create (its Services could not be applied) — and then refuses the merged list (two ports named
 * http). So a Service whose ports differ gets the template's list first, by merge patch (which replaces lists).
 */
async function reconcileServicePorts(kube: KubeClient, objects: KubeObject[], log: (m: string) => void): Promise<void> {
  for (const o of objects.filter((x) => x.kind === 'Service')) {
    const ref = { apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name };
    const live = await kube.get(ref);
    if (!live || portsOf(live) === portsOf(o)) continue;
    await kube.mergePatch(ref, { spec: { ports: o.spec.ports } });
    log(`Service ${o.metadata.name}: ports ${portsOf(live)} → ${portsOf(o)}`);
  }
}

/** Which of the app objects are missing or run another image than the one wanted (read through the run's shared lists). */
async function drift(kube: KubeClient, reads: KubeReader, objects: KubeObject[]): Promise<string[]> {
  const out: string[] = [];
  for (const o of objects) {
    if (!(await kube.serves(o.apiVersion, o.kind))) {
      out.push(`${o.kind} ${o.metadata.name} (kind not served: is Istio installed?)`);
      continue;
    }
    const live = await reads.get({ apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name });
    if (!live) out.push(`${o.kind} ${o.metadata.name} missing`);
    else if (o.kind === 'Service' && portsOf(live) !== portsOf(o)) out.push(`Service ${o.metadata.name} has ports ${portsOf(live)}, not ${portsOf(o)}`);
    else if (o.kind === 'Deployment' && live.spec.template.spec.containers[0]?.image !== o.spec.template.spec.containers[0].image) {
      out.push(`${o.metadata.name} runs another image`);
    }
  }
  return out;
}

export const appDeploy: Step<UpSettings> = {
  id: 'app-deploy',
  title: 'Deploy micro-api, micro-order, micro-pay and the gateway',
  async check(ctx) {
    const kube = await ctx.kube();
    // a check never asks (plan, --dry-run): with no registry chosen yet, the images step asks when it runs
    if (!(await resolveTarget(ctx, { ask: false }))) return { satisfied: false, detail: 'deploy the app (its image registry is chosen when the images step runs, or pass --registry)' };
    const reads = await ctx.reads();
    const problems = await drift(kube, reads, await desiredObjects(ctx));
    const legacy = await legacyObjects(kube, await ctx.inventory(), ctx.options.namespace, reads);
    problems.push(...legacy.map((o) => `${o.kind} ${o.metadata.name} of an earlier meshdemo version to replace`));
    if (problems.length) return { satisfied: false, detail: problems.join('; ') };
    const states = await Promise.all(APP_DEPLOYMENTS.map((d) => deploymentState(reads, ctx.options.namespace, d)));
    const notReady = states.filter((s) => !s.ready);
    if (notReady.length) return { satisfied: false, detail: `waiting for ${notReady.map((s) => s.name).join(', ')}` };
    return { satisfied: true, detail: `deployed and ready in ${ctx.options.namespace}` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const namespace = ctx.options.namespace;
    const deadline = Date.now() + ctx.options.timeoutMs;
    const objects = await desiredObjects(ctx);
    inventory.ensureRoomFor('app-deploy', objects);
    await reconcileServicePorts(kube, objects, (m) => ctx.log.info(m));
    const outcomes = await applyAll(kube, objects, {
      defaultNamespace: namespace,
      signal: ctx.signal,
      deadline,
      labels: MANAGED_BY,
      onApplied: async ({ object, created }) => {
        if (created) await inventory.recordCreated('app-deploy', object);
      },
    });
    await waitForDeployments(
      kube,
      APP_DEPLOYMENTS.map((name) => ({ namespace, name })),
      { deadline, signal: ctx.signal, onWaiting: (n) => ctx.log.info(`waiting for ${n.map((s) => `${s.name} ${s.available}/${s.desired}`).join(', ')}`) },
    );
    // an earlier meshdemo version named these objects differently: the new ones serve now, so the old ones go
    for (const old of await legacyObjects(kube, inventory, namespace)) {
      const ref = { apiVersion: old.apiVersion, kind: old.kind, namespace, name: old.metadata.name };
      await kube.delete(ref);
      await inventory.forgetCreated(ref);
      ctx.log.info(`replaced ${describeRef(ref)} of an earlier meshdemo version`);
    }
    const pods = await kube.list('v1', 'Pod', { namespace, labelSelector: 'app in (micro-api,micro-order,micro-pay)' });
    const bare = pods.filter((p) => !p.metadata.deletionTimestamp && !(p.spec?.containers ?? []).some((c: any) => c.name === 'istio-proxy'));
    if (bare.length) {
      ctx.log.warn(`${bare.length} app pod(s) have no istio-proxy sidecar (${bare.map((p) => p.metadata.name).join(', ')}): is ${namespace} labelled istio-injection=enabled, and is the injector running?`);
    }
    await inventory.completeStep('app-deploy', { images: Object.fromEntries(objects.filter((o) => o.kind === 'Deployment').map((o) => [o.metadata.name, o.spec.template.spec.containers[0].image])) });
    return `${outcomes.length} objects applied in ${namespace}, ${outcomes.filter((o) => o.created).length} created`;
  },
};
