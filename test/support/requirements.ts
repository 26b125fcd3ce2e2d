// The one place an integration suite decides whether the real components it needs are here.
//
// Locally, a missing component skips the suite with the reason. Under CI=true it FAILS: a fresh machine on which
// test/setup.sh did not run must not report green.
import { test } from 'node:test';
import { controlPlaneAvailable, testenvBinDir } from './control-plane.js';
import { dockerUnavailableReason } from './docker-env.js';

export type Component = 'control-plane' | 'docker';

function missing(component: Component): string | undefined {
  if (component === 'control-plane') {
    return controlPlaneAvailable() ? undefined : `control plane binaries not found in ${testenvBinDir()} (or etcd/openssl missing): run test/setup.sh`;
  }
  const reason = dockerUnavailableReason();
  return reason ? `real docker environment unavailable: ${reason}` : undefined;
}

export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI !== undefined && env.CI !== '' && env.CI !== '0' && env.CI.toLowerCase() !== 'false';
}

/**
 * The `skip` option for a suite that needs these components: false when all are here. When one is missing it
 * returns the reason (the suite is skipped) — and under CI it also registers a test that fails with that reason.
 */
export function skipUnless(...components: Component[]): string | false {
  const reasons = components.map(missing).filter((r): r is string => r !== undefined);
  if (!reasons.length) return false;
  const why = reasons.join('; ');
  if (inCI()) {
    test(`required components are present (CI=true: missing ones fail, never skip)`, () => {
      throw new Error(why);
    });
  }
  return why;
}
