import { ExternalCommandError, ReadinessTimeoutError } from '../core/errors.js';
import { parseDuration } from '../core/options.js';
import { maskSecretSets } from '../core/secrets.js';
import type { Context, Step } from '../core/step.js';
import { runCommand } from '../exec/run.js';
import { diagnoseDeployment, toState } from '../kube/readiness.js';
import type { KubeClient } from '../kube/client.js';
import { istioInstallation, ISTIO_NAMESPACE } from './facts.js';
import { istioctlPath } from './istio-release.js';
import type { UpSettings } from './settings.js';

type Settings = Pick<UpSettings, 'istioVersion' | 'istioSet' | 'reinstall'>;
export const PROFILE = 'demo';

/**
 * How long istioctl may run past its own --readiness-timeout (applying the manifests, its own retries) before
 * meshdemo kills it and reports a readiness timeout: max(30s, 20% of it), or MESHDEMO_ISTIOCTL_GRACE ("10s", "2m").
 */
export function istioctlGraceMs(readinessMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MESHDEMO_ISTIOCTL_GRACE;
  if (raw !== undefined && raw.trim() !== '') return parseDuration(raw, 'MESHDEMO_ISTIOCTL_GRACE');
  return Math.max(30_000, Math.round(readinessMs * 0.2));
}

/** --kubeconfig/--context as meshdemo resolved them, for istioctl. */
export async function istioctlKubeArgs(ctx: Context<any>): Promise<string[]> {
  const kube = await ctx.kube();
  return [...(ctx.options.kubeconfig ? ['--kubeconfig', ctx.options.kubeconfig] : []), '--context', kube.contextName];
}

export const istioInstall: Step<Settings> = {
  id: 'istio-install',
  title: 'istioctl install --set profile=demo',
  async check(ctx) {
    const installed = await istioInstallation(await ctx.kube());
    const { istioVersion, reinstall } = ctx.settings;
    if (installed?.version === istioVersion && installed.profile === PROFILE && !reinstall) {
      return { satisfied: true, detail: `Istio ${istioVersion} (profile ${PROFILE}) is installed` };
    }
    if (installed && !reinstall) return { satisfied: false, detail: `found Istio ${installed.version ?? '?'} (profile ${installed.profile ?? '?'}); will install ${istioVersion}` };
    return { satisfied: false, detail: `install Istio ${istioVersion}` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    if (!(await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: ISTIO_NAMESPACE }))) {
      await inventory.recordCreatedNamespace(ISTIO_NAMESPACE);
    }
    const seconds = Math.max(30, Math.round(ctx.options.timeoutMs / 1000));
    const args = [
      'install',
      '--set',
      `profile=${PROFILE}`,
      ...ctx.settings.istioSet.flatMap((s) => ['--set', s]),
      '-y',
      '--readiness-timeout',
      `${seconds}s`,
      ...(await istioctlKubeArgs(ctx)),
    ];
    const graceMs = istioctlGraceMs(seconds * 1000);
    try {
      await runCommand(istioctlPath(ctx.options.cacheDir, ctx.settings.istioVersion), args, {
        signal: ctx.signal,
        timeoutMs: seconds * 1000 + graceMs,
        // a hung istioctl is a readiness timeout (exit 4), not a failed command
        onTimeout: ({ name, timeoutMs, tail }) =>
          new ReadinessTimeoutError(`${name} did not finish within the deadline (${Math.round(timeoutMs / 1000)}s: its --readiness-timeout ${seconds}s + ${Math.round(graceMs / 1000)}s grace) and was stopped`, {
            hint: 'its last output is shown below; check the cluster (kubectl get pods -n istio-system), or raise --timeout, then re-run',
            details: tail,
          }),
        tailLines: 10,
        onLine: (line) => {
          if (!line.trim()) return;
          if (/third.party.JWT|first.party.JWT/i.test(line)) ctx.log.note(line.trim());
          else ctx.log.info(line);
        },
      });
    } catch (err) {
      if (!(err instanceof ExternalCommandError || err instanceof ReadinessTimeoutError)) throw err;
      const diagnosis = await diagnoseNamespace(kube, ISTIO_NAMESPACE).catch(() => []);
      const Failure = err instanceof ReadinessTimeoutError ? ReadinessTimeoutError : ExternalCommandError;
      throw new Failure(err.message, {
        hint: diagnosis.length ? 'the diagnosis below says which Deployments are not ready and why' : err.hint,
        details: [...err.details, ...diagnosis],
      });
    }
    // the record is readable with the view role: credentials given with --istio-set are kept masked
    await inventory.completeStep('istio-install', { version: ctx.settings.istioVersion, profile: PROFILE, set: maskSecretSets(ctx.settings.istioSet) });
    return `Istio ${ctx.settings.istioVersion} installed (profile ${PROFILE})`;
  },
};

/** Every Deployment in the namespace that is not ready, with its pods' reasons and events. */
export async function diagnoseNamespace(kube: KubeClient, namespace: string): Promise<string[]> {
  const deployments = await kube.list('apps/v1', 'Deployment', { namespace });
  const lines: string[] = [];
  for (const d of deployments) {
    if (!toState(namespace, d.metadata.name, d).ready) lines.push(...(await diagnoseDeployment(kube, namespace, d.metadata.name)));
  }
  return lines;
}
