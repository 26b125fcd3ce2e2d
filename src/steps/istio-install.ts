import { ExternalCommandError, ReadinessTimeoutError } from '../core/errors.js';
import { parseDuration } from '../core/options.js';
import { maskSecretSets } from '../core/secrets.js';
import type { Context, Step } from '../record/context.js';
import { runCommand } from '../exec/run.js';
import { diagnoseDeployment, toState } from '../kube/readiness.js';
import { describeRef, KubeApiError, type KubeClient } from '../kube/client.js';
import { INSTALLED_STATE, istioInstallation, ISTIO_NAMESPACE, revisionOf } from '../demo/facts.js';
import { labelledByMeshdemo, MANAGED_BY } from '../record/inventory.js';
import { istioctlKubeArgs } from '../demo/istio-release.js';
import { istioctlPath } from '../core/cache-layout.js';
import type { UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'istioVersion' | 'istioSet' | 'reinstall'>;
export const PROFILE = 'demo';

/**
 * How long istioctl may run past its own waits (applying the manifests, its retries) before meshdemo kills it and
 * reports a readiness timeout: max(30s, 20% of one wait), or MESHDEMO_ISTIOCTL_GRACE ("10s", "2m").
 */
export function istioctlGraceMs(readinessMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MESHDEMO_ISTIOCTL_GRACE;
  if (raw !== undefined && raw.trim() !== '') return parseDuration(raw, 'MESHDEMO_ISTIOCTL_GRACE');
  return Math.max(30_000, Math.round(readinessMs * 0.2));
}

/** istio 1.8.4 operator/pkg/helmreconciler/wait.go cRDPollTimeout: Base waits up to 60 s for its CRDs, whatever the timeout. */
export const ISTIOCTL_CRD_WAIT_MS = 60_000;
/**
 * Readiness waits istioctl 1.8.4 runs one after another for the demo profile (helmreconciler/common.go
 * ComponentDependencies): Istiod, then the ingress and egress gateways together. Base has nothing wait.go waits
 * for (no Deployment, Pod or Namespace), so its only wait is the CRD wait above.
 */
export const ISTIOCTL_SEQUENTIAL_WAITS = 2;

/** The longest a healthy-but-slow istioctl install can take with this per-component wait, before the grace. */
export function istioctlWorstCaseMs(waitMs: number): number {
  return ISTIOCTL_CRD_WAIT_MS + ISTIOCTL_SEQUENTIAL_WAITS * waitMs;
}

/**
 * istioctl's own readiness failure, from its output (either stream; pb writes no newline after its last message,
 * so nothing here is anchored to a line's end): operator/pkg/helmreconciler/apply.go + wait.go print
 * "✘ <Component> encountered an error: failed to wait for resource: resources not ready after <d>: timed out
 * waiting for the condition" followed by one "<Kind>/<namespace>/<name>" line per resource, or, for CRDs,
 * "failed to verify CRD creation: …".
 */
export function istioctlReadinessFailure(lines: string[]): { components: string[]; resources: string[]; after?: string } | undefined {
  const components: string[] = [];
  const resources: string[] = [];
  let after: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /✘ (.+?) encountered an error: failed to wait for resource: (?:resources not ready after (\S+): timed out waiting for the condition|failed to verify CRD creation)/.exec(lines[i]);
    if (!m) continue;
    components.push(m[1]);
    after ??= m[2];
    for (let j = i + 1; j < lines.length; j++) {
      const r = /^((?:Deployment|Pod|DaemonSet|StatefulSet|Namespace)\/\S+)/.exec(lines[j]);
      if (!r) break;
      resources.push(r[1]);
    }
  }
  return components.length ? { components, resources, after } : undefined;
}

/** The image tag a list of `--set` values selects (`tag=x`), if any. */
function tagOf(istioSet: string[]): string | undefined {
  return istioSet.map((s) => /^(?:spec\.)?tag=(.*)$/.exec(s)?.[1]).filter((v) => v !== undefined).pop();
}

export const istioInstall: Step<Settings> = {
  id: 'istio-install',
  title: 'istioctl install --set profile=demo',
  async check(ctx) {
    const { istioVersion, istioSet, reinstall } = ctx.settings;
    const installed = await istioInstallation(await ctx.reads(), { revision: revisionOf(istioSet) });
    if (!installed) return { satisfied: false, detail: `install Istio ${istioVersion}` };
    const recorded = (await ctx.inventory()).data.steps['istio-install']?.inputs as { version?: string; profile?: string; set?: string[] } | undefined;
    const version = installed.version ?? recorded?.version;
    const found = describeFound(installed, version);
    if (reinstall) return { satisfied: false, detail: `${found}; --reinstall: will install ${istioVersion}` };
    if (version !== istioVersion || installed.profile !== PROFILE) return { satisfied: false, detail: `${found}; will install ${istioVersion}` };
    // the images' tag is the version unless --istio-set tag=… says otherwise
    const tag = tagOf(istioSet) ?? istioVersion;
    if (installed.tag !== undefined && installed.tag !== tag) return { satisfied: false, detail: `${found}; will install tag ${tag}` };
    if (recorded?.set && JSON.stringify(recorded.set) !== JSON.stringify(maskSecretSets(istioSet))) {
      return { satisfied: false, detail: `${found}, installed with --istio-set ${recorded.set.join(',') || '(none)'}; will install with ${maskSecretSets(istioSet).join(',') || '(none)'}` };
    }
    return { satisfied: true, detail: `Istio ${istioVersion} (profile ${PROFILE}${installed.tag !== istioVersion && installed.tag ? `, tag ${installed.tag}` : ''}) is installed` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const seconds = Math.max(30, Math.round(ctx.options.timeoutMs / 1000));
    const args = [
      'install',
      '--set',
      `profile=${PROFILE}`,
      ...ctx.settings.istioSet.flatMap((s) => ['--set', s]),
      '-y',
      // honoured from istioctl 1.9 only; 1.8.4 reads WAIT_FOR_RESOURCES_TIMEOUT (reconciler.go NewHelmReconciler)
      '--readiness-timeout',
      `${seconds}s`,
      ...(await istioctlKubeArgs(ctx)),
    ];
    const graceMs = istioctlGraceMs(seconds * 1000);
    const worstCaseMs = istioctlWorstCaseMs(seconds * 1000);
    const output: string[] = [];
    try {
      await runCommand(istioctlPath(ctx.options.cacheDir, ctx.settings.istioVersion), args, {
        signal: ctx.signal,
        env: { WAIT_FOR_RESOURCES_TIMEOUT: `${seconds}s` },
        timeoutMs: worstCaseMs + graceMs,
        // a hung istioctl is a readiness timeout (exit 4), not a failed command
        onTimeout: ({ name, timeoutMs, tail }) =>
          new ReadinessTimeoutError(
            `${name} did not finish within the deadline (${Math.round(timeoutMs / 1000)}s: ${ISTIOCTL_CRD_WAIT_MS / 1000}s for its CRDs + ${ISTIOCTL_SEQUENTIAL_WAITS} × its ${seconds}s readiness wait + ${Math.round(graceMs / 1000)}s grace) and was stopped`,
            {
              hint: 'its last output is shown below; check the cluster (kubectl get pods -n istio-system), or raise --timeout, then re-run',
              details: tail,
            },
          ),
        tailLines: 10,
        // istioctl writes progress to stderr and notes to stdout; both are read alike
        onLine: (line) => {
          output.push(line);
          if (output.length > 500) output.shift();
          if (!line.trim()) return;
          if (/third.party.JWT|first.party.JWT/i.test(line)) ctx.log.note(line.trim());
          else ctx.log.info(line);
        },
      });
    } catch (err) {
      if (!(err instanceof ExternalCommandError || err instanceof ReadinessTimeoutError)) throw err;
      throw await explainInstallFailure(kube, err, output);
    }
    await markInstalledByMeshdemo(ctx, kube);
    // the record is readable with the view role: credentials given with --istio-set are kept masked
    await inventory.completeStep('istio-install', { version: ctx.settings.istioVersion, profile: PROFILE, set: maskSecretSets(ctx.settings.istioSet) });
    return `Istio ${ctx.settings.istioVersion} installed (profile ${PROFILE})`;
  },
};

function describeFound(installed: { profile?: string; tag?: string }, version: string | undefined): string {
  const tag = installed.tag && installed.tag !== version ? `, tag ${installed.tag}` : '';
  return `found Istio ${version ?? '?'} (profile ${installed.profile ?? '?'}${tag})`;
}

/** istioctl failed or timed out: a readiness failure it reported becomes a readiness timeout, with the diagnosis. */
async function explainInstallFailure(kube: KubeClient, err: ExternalCommandError | ReadinessTimeoutError, output: string[]): Promise<Error> {
  const diagnosis = await diagnoseNamespace(kube, ISTIO_NAMESPACE).catch(() => []);
  const readiness = err instanceof ExternalCommandError ? istioctlReadinessFailure(output) : undefined;
  if (readiness) {
    const what = readiness.resources.length ? ` (${readiness.resources.join(', ')})` : '';
    return new ReadinessTimeoutError(`istioctl install: ${readiness.components.join(', ')} not ready${readiness.after ? ` after ${readiness.after}` : ''}${what}`, {
      hint: diagnosis.length ? 'the diagnosis below says which Deployments are not ready and why; fix the cause or raise --timeout, then re-run' : 'check the cluster (kubectl get pods -n istio-system) or raise --timeout, then re-run',
      details: [...diagnosis, ...err.details],
    });
  }
  const Failure = err instanceof ReadinessTimeoutError ? ReadinessTimeoutError : ExternalCommandError;
  return new Failure(err.message, {
    hint: diagnosis.length ? 'the diagnosis below says which Deployments are not ready and why' : err.hint,
    details: [...err.details, ...diagnosis],
  });
}

async function markInstalledByMeshdemo(ctx: Context<Settings>, kube: KubeClient): Promise<void> {
  // the mark `down --force` looks for when there is no record: meshdemo installed this Istio (istioctl keeps
  // labels it did not set when it re-applies installed-state: helmreconciler/apply.go applyOverlay)
  const revision = revisionOf(ctx.settings.istioSet);
  const state = { ...INSTALLED_STATE, name: revision ? `installed-state-${revision}` : INSTALLED_STATE.name };
  try {
    await kube.mergePatch(state, { metadata: { labels: MANAGED_BY } });
  } catch (err) {
    if (!(err instanceof KubeApiError)) throw err;
    // the install itself succeeded and the record says so; only a later `down --force` without a record needs this mark
    ctx.log.warn(`could not label ${describeRef(state)} as installed by meshdemo (${err.message}): without meshdemo's record, down --force will leave this Istio`);
  }
}

/**
 * Every Deployment of Istio's in the namespace that is not ready, with its pods' reasons and events; the addons,
 * applied meanwhile with meshdemo's label, are the addons step's to report.
 */
export async function diagnoseNamespace(kube: KubeClient, namespace: string): Promise<string[]> {
  const deployments = await kube.list('apps/v1', 'Deployment', { namespace });
  const lines: string[] = [];
  for (const d of deployments) {
    if (labelledByMeshdemo(d)) continue;
    if (!toState(namespace, d.metadata.name, d).ready) lines.push(...(await diagnoseDeployment(kube, namespace, d.metadata.name)));
  }
  return lines;
}
