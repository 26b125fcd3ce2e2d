// Child process of bench/addons.ts: runs meshdemo's `addons` step (check, then run) through the runner, as
// `up` does, against the kubeconfig given, and prints every event as NDJSON on stdout (the parent timestamps
// them). The release directory in the cache is prepared by the parent (samples/ from the real Istio 1.8.4 YAML).
//
//   node dist/bench/addons-step.js <kubeconfig> <cache-dir>
import { createContext } from '../src/commands/context.js';
import { KubeClient } from '../src/kube/client.js';
import type { MeshEvent } from '../src/core/events.js';
import { createPrompter } from '../src/core/prompt.js';
import { runSteps } from '../src/core/runner.js';
import { addons } from '../src/steps/addons.js';
import { parseUpSettings } from '../src/settings.js';

const [kubeconfig, cacheDir] = process.argv.slice(2);

// MESHDEMO_BENCH_TRACE=1: every API request on stderr, with its start and end (ms since process start)
if (process.env.MESHDEMO_BENCH_TRACE === '1') {
  const original = KubeClient.prototype.request;
  KubeClient.prototype.request = async function (this: KubeClient, method: string, path: string, opts?: any) {
    const t0 = performance.now();
    try {
      return await original.call(this, method, path, opts);
    } finally {
      process.stderr.write(`${t0.toFixed(0).padStart(6)} ${performance.now().toFixed(0).padStart(6)} ${method} ${path}\n`);
    }
  } as typeof original;
}
const controller = new AbortController();
const ctx = createContext({
  options: { kubeconfig, namespace: 'default', yes: true, json: true, verbose: false, cacheDir, timeoutMs: 300_000 },
  settings: parseUpSettings({ app: false }),
  events: { emit: (e: MeshEvent) => process.stdout.write(`${JSON.stringify(e)}\n`) },
  signal: controller.signal,
  prompt: createPrompter({ json: true, isTTY: false }),
  secrets: new Set(),
});
try {
  const [outcome] = await runSteps([addons], ctx);
  const kube = await ctx.kube();
  process.stdout.write(`${JSON.stringify({ type: 'result', ok: true, outcome, apiRequests: kube.requestCount })}\n`);
} catch (err) {
  process.stderr.write(`addons step failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  ctx.dispose();
}
