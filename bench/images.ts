// 5. The images step with a real private dockerd and registry on loopback (test/support/docker-env.ts; base image
// imported from this machine's node binary, nothing pulled):
// - first build of the three images (build + push), against plain `docker build --no-cache` of the same three
//   prepared contexts in sequence (no push);
// - the same first step into an empty registry (a new one each round, none of the base layers in it), against
//   the same work by hand: docker build then docker push, service after service;
// - a second `up` with unchanged sources: the runner checks the step (it is satisfied, so skipped), and, to be
//   sure, the step's run() is forced too. Target: zero builds and zero pushes (counted by docker wrappers on PATH: test/support/tool-calls.ts).
// Each repetition starts cold: new registry path, no meshdemo image and no build cache left in the daemon.
// The step runs in this process with a stub cluster context (as in test/integration/images.test.ts): it only
// needs the context name and an inventory to record the images in.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createContext } from '../src/commands/context.js';
import type { MeshEvent } from '../src/core/events.js';
import type { Inventory } from '../src/record/inventory.js';
import { createPrompter } from '../src/core/prompt.js';
import { runSteps } from '../src/core/runner.js';
import type { Context } from '../src/record/context.js';
import { recordToolCalls } from '../test/support/tool-calls.js';
import { contextDir } from '../test/support/build-context.js';
import type { KubeClient } from '../src/kube/client.js';
import { images } from '../src/steps/images.js';
import { parseUpSettings, SERVICES, type UpSettings } from '../src/settings.js';
import { dockerUnavailableReason, startDockerEnv, type DockerEnv } from '../test/support/docker-env.js';
import { list, log, median, ms, onCleanup, ratio, reps, spread, tmpDir, type BenchResult } from './common.js';

interface Timeline {
  events: Array<{ at: number; e: MeshEvent }>;
}

/** The step's docker build times (its own "built … in N s" lines), summed. */
function buildTime(t: Timeline): number {
  let buildMs = 0;
  for (const { e } of t.events) {
    const built = e.type === 'log' ? / built \S+ in ([\d.]+) s$/.exec(e.message) : null;
    if (built) buildMs += Number(built[1]) * 1000;
  }
  return buildMs;
}

function stepContext(registry: string, baseImage: string, timeline: Timeline = { events: [] }): Context<UpSettings> {
  const ctx = createContext<UpSettings>({
    options: { namespace: 'default', yes: true, json: true, verbose: false, cacheDir: path.join(os.tmpdir(), 'meshdemo-bench-images-cache'), timeoutMs: 600_000 },
    settings: parseUpSettings({ registry, baseImage }),
    events: { emit: (e) => timeline.events.push({ at: performance.now(), e }) },
    signal: new AbortController().signal,
    prompt: createPrompter({ json: true, isTTY: false }),
    secrets: new Set(),
  });
  // no cluster: the context's name and one amd64 node (the build's platform), as the images tests' harness has it
  ctx.kube = async () => ({ contextName: 'bench', server: 'https://127.0.0.1:1', list: async () => [{ status: { nodeInfo: { architecture: 'amd64' } } }] }) as unknown as KubeClient;
  const inventory = { async recordImages() {} };
  ctx.inventory = async () => inventory as unknown as Inventory;
  return ctx;
}

/** Removes every image but the base image, and the build cache: the next build starts cold. */
async function coldDaemon(env: DockerEnv): Promise<void> {
  const { stdout } = await env.docker(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
  const refs = stdout.split('\n').filter((r) => r && r !== env.baseImage && !r.includes('<none>'));
  if (refs.length) await env.docker(['rmi', '-f', ...refs], { timeoutMs: 120_000 });
  await env.docker(['image', 'prune', '-f'], { timeoutMs: 120_000 });
  await env.docker(['builder', 'prune', '-af'], { timeoutMs: 120_000 }).catch(() => undefined);
}

export async function run(): Promise<BenchResult> {
  const reason = dockerUnavailableReason();
  if (reason) throw new Error(`no private Docker environment: ${reason}`);
  const n = reps();
  const savedHost = process.env.DOCKER_HOST;
  const env = await startDockerEnv();
  const stopDocker = onCleanup(async () => {
    if (savedHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedHost;
    await env.stop();
  });
  process.env.DOCKER_HOST = env.dockerHost; // as a user's environment would say; runCommand passes it on
  const tmp = tmpDir('images');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const first: number[] = [];
  const second: number[] = [];
  const forced: number[] = [];
  const reference: number[] = [];
  const emptyFirst: number[] = [];
  const byHand: number[] = [];
  const firstCounts: string[] = [];
  const firstBuild: number[] = [];
  const secondCounts: string[] = [];
  let secondStatus = '';
  let forcedMessage = '';
  const tools = recordToolCalls();
  try {
    log(`images: dockerd ${ms(env.timings.dockerdMs)}, registry ${ms(env.timings.registryMs)}, base image ${ms(env.timings.baseImageMs)}`);
    for (let i = 0; i < n; i++) {
      const registry = `${env.registry}/bench${i}`;
      for (const what of i % 2 ? ['reference', 'meshdemo'] : ['meshdemo', 'reference']) {
        await coldDaemon(env);
        if (what === 'meshdemo') {
          // first up: the runner checks the step (not satisfied) and runs it
          tools.reset();
          let t0 = performance.now();
          const timeline: Timeline = { events: [] };
          const [outcome] = await runSteps([images], stepContext(registry, env.baseImage, timeline));
          first.push(performance.now() - t0);
          firstBuild.push(buildTime(timeline));
          if (outcome.status !== 'done') throw new Error(`first images step: ${outcome.status} ${outcome.message}`);
          firstCounts.push(`${tools.counts().build} builds, ${tools.counts().push} pushes`);
          // second up with unchanged sources: a new context, as a new process would have
          tools.reset();
          t0 = performance.now();
          const [again] = await runSteps([images], stepContext(registry, env.baseImage));
          second.push(performance.now() - t0);
          secondStatus = `${again.status} (${again.message?.replace(/: .*/, '')})`;
          t0 = performance.now();
          forcedMessage = String(await images.run(stepContext(registry, env.baseImage)));
          forced.push(performance.now() - t0);
          secondCounts.push(`${tools.counts().build} builds, ${tools.counts().push} pushes`);
          log(`images: meshdemo #${i + 1}: first ${ms(first.at(-1)!)} (${firstCounts.at(-1)}), second up ${ms(second.at(-1)!)} (${secondCounts.at(-1)})`);
        } else {
          // plain docker build of the same prepared contexts, one after the other
          const prepared = await Promise.all(SERVICES.map((s) => contextDir(s, env.baseImage, tmp)));
          try {
            const t0 = performance.now();
            for (const [k, p] of prepared.entries()) {
              await env.docker(['build', '--no-cache', '--pull=false', '--build-arg', `BASE_IMAGE=${env.baseImage}`, '-t', `bench-ref/${SERVICES[k]}:${i}`, p.dir], { timeoutMs: 600_000 });
            }
            reference.push(performance.now() - t0);
            log(`images: docker build ×3 #${i + 1}: ${ms(reference.at(-1)!)}`);
          } finally {
            for (const p of prepared) await p.cleanup();
          }
        }
      }
      // the same first step into a registry that holds none of the base layers (a new one for each), against the
      // same work by hand: docker build then docker push, service after service
      for (const what of i % 2 ? ['by hand', 'meshdemo'] : ['meshdemo', 'by hand']) {
        await coldDaemon(env);
        const empty = `${await env.freshRegistry()}/micro-service`;
        if (what === 'meshdemo') {
          const t0 = performance.now();
          const [outcome] = await runSteps([images], stepContext(empty, env.baseImage));
          emptyFirst.push(performance.now() - t0);
          if (outcome.status !== 'done') throw new Error(`first images step into an empty registry: ${outcome.status} ${outcome.message}`);
          log(`images: meshdemo into an empty registry #${i + 1}: ${ms(emptyFirst.at(-1)!)}`);
        } else {
          const prepared = await Promise.all(SERVICES.map((s) => contextDir(s, env.baseImage, tmp)));
          try {
            const t0 = performance.now();
            for (const [k, p] of prepared.entries()) {
              const ref = `${empty}/${SERVICES[k]}:${i}`;
              await env.docker(['build', '--no-cache', '--pull=false', '--build-arg', `BASE_IMAGE=${env.baseImage}`, '-t', ref, p.dir], { timeoutMs: 600_000 });
              await env.docker(['push', ref], { timeoutMs: 600_000 });
            }
            byHand.push(performance.now() - t0);
            log(`images: docker build + push ×3 into an empty registry #${i + 1}: ${ms(byHand.at(-1)!)}`);
          } finally {
            for (const p of prepared) await p.cleanup();
          }
        }
      }
    }
  } finally {
    tools.restore();
    await stopDocker();
    await cleanTmp();
  }
  const f = median(first);
  const r = median(reference);
  const zero = secondCounts.every((c) => c === '0 builds, 0 pushes');
  const rounds = first.map((x, k) => x / reference[k]);
  const emptyRounds = emptyFirst.map((x, k) => x / byHand[k]);
  return {
    name: 'images',
    title: `5. Image step with a private dockerd + registry (median of ${n}; cold daemon before each first build)`,
    headers: ['run', 'median', 'runs', 'docker builds / pushes', 'vs docker build ×3'],
    rows: [
      ['meshdemo images step, first up (check, build + push ×3)', ms(f), list(first), firstCounts.join('; '), ratio(f, r)],
      ['  … its three docker builds, summed (they run at the same time, so this exceeds their wall time)', ms(median(firstBuild)), list(firstBuild), '3 builds', ''],
      ['docker build --no-cache ×3, in sequence (no push)', ms(r), list(reference), '3 builds, 0 pushes', '1.00×'],
      ['meshdemo images step, first up, into an empty registry (a new one each round: none of the base layers)', ms(median(emptyFirst)), list(emptyFirst), '3 builds, 3 pushes', ratio(median(emptyFirst), median(byHand))],
      ['docker build + docker push, service after service, into an empty registry', ms(median(byHand)), list(byHand), '3 builds, 3 pushes', '1.00×'],
      [`meshdemo second up, sources unchanged: check → ${secondStatus}`, ms(median(second)), list(second), secondCounts.join('; '), ratio(median(second), r)],
      [`  … and run() forced anyway: "${forcedMessage}"`, ms(median(forced)), list(forced), secondCounts.join('; '), ratio(median(forced), r)],
    ],
    targets: [
      {
        what: 'first images step (build + push ×3) ≤ 1.0× three sequential plain docker builds without push, every round < 1.1×',
        met: f <= r && rounds.every((x) => x < 1.1),
        figure: ratio(f, r),
        spread: spread(rounds),
        detail: `${ms(f)} vs ${ms(r)}; per-round ratios ${rounds.map((x) => x.toFixed(2)).join(', ')}`,
      },
      {
        what: 'first images step into an empty registry ≤ 1.0× the same by hand (docker build + docker push ×3), every round < 1.1× (the like-for-like restatement proposed for the target above; not issue 20\'s own)',
        met: median(emptyFirst) <= median(byHand) && emptyRounds.every((x) => x < 1.1),
        figure: ratio(median(emptyFirst), median(byHand)),
        spread: spread(emptyRounds),
        detail: `${ms(median(emptyFirst))} vs ${ms(median(byHand))}; per-round ratios ${emptyRounds.map((x) => x.toFixed(2)).join(', ')}`,
      },
      {
        what: 'second up with unchanged sources: zero builds and zero pushes',
        met: zero,
        figure: secondCounts.at(-1) ?? 'n/a',
        spread: [...new Set(secondCounts)].join(' / '),
        detail: secondCounts.join('; '),
      },
    ],
    notes: [
      `dockerd + registry + base image start-up (not timed above): ${ms(env.timings.dockerdMs + env.timings.registryMs + env.timings.baseImageMs)}`,
      'the first-build row includes what the reference does not: hashing the sources, preparing the contexts, the LABEL line and pushing to the registry; the three services build and push concurrently',
    ],
  };
}
