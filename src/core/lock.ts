import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, PreflightError } from './errors.js';
import type { StepLog } from './events.js';
import { MANAGED_BY } from './inventory.js';
import { parseDuration } from './options.js';
import { KubeApiError, KubeForbiddenError, type KubeClient, type KubeObject } from '../kube/client.js';

/**
 * The cluster-wide lock that keeps two `meshdemo up`/`down`/`expose` runs from changing one cluster at once.
 *
 * It is a coordination.k8s.io/v1 Lease `meshdemo-lock` in the `default` namespace: `default` always exists (the
 * app namespace may not exist before up creates it, and may be deleted by down), and unlike `kube-system` it is
 * writable for users who are not cluster admins. The holder (holderIdentity `<hostname>/<pid>/<random>`) renews
 * it every 10 s; it expires 30 s after the last renewal, so a holder that died is taken over then — at once
 * when the holder was a process on this machine that no longer exists. Released (deleted) when the command ends,
 * also on errors and Ctrl-C. A second run waits for it up to MESHDEMO_LOCK_WAIT (default 30s), then refuses with
 * a PreflightError (exit 3) naming the holder.
 */
export const LOCK_NAMESPACE = 'default';
export const LOCK_NAME = 'meshdemo-lock';
export const LEASE_DURATION_SECONDS = 30;
const RENEW_EVERY_MS = 10_000;
const DEFAULT_WAIT_MS = 30_000;
const COMMAND_ANNOTATION = 'meshdemo.io/command';

const LEASE_REF = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: LOCK_NAMESPACE, name: LOCK_NAME };

/** MESHDEMO_LOCK_WAIT: how long to wait for another run's lock ("0", "45s", "2m"; a bare number is seconds). */
export function lockWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MESHDEMO_LOCK_WAIT;
  if (raw === undefined || raw.trim() === '') return DEFAULT_WAIT_MS;
  return parseDuration(raw, 'MESHDEMO_LOCK_WAIT');
}

/** RFC 3339 with microseconds, as metav1.MicroTime is written. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseHolder {
  identity: string;
  command?: string;
  renewedAt?: Date;
  expiresAt?: Date;
}

export function describeHolder(lease: KubeObject | undefined): LeaseHolder | undefined {
  const identity: string | undefined = lease?.spec?.holderIdentity;
  if (!lease || !identity) return undefined;
  const renewed = lease.spec.renewTime ?? lease.spec.acquireTime;
  const renewedAt = renewed ? new Date(renewed) : undefined;
  const duration = Number(lease.spec.leaseDurationSeconds ?? LEASE_DURATION_SECONDS);
  return {
    identity,
    command: lease.metadata.annotations?.[COMMAND_ANNOTATION],
    renewedAt,
    expiresAt: renewedAt ? new Date(renewedAt.getTime() + duration * 1000) : undefined,
  };
}

/** A holder on this machine whose process is gone (killed -9, crashed) holds nothing. */
export function holderIsDeadLocalProcess(identity: string, hostname = os.hostname()): boolean {
  const [host, pidText] = identity.split('/');
  const pid = Number(pidText);
  if (host !== hostname || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export interface ClusterLockOptions {
  /** What holds it (up, down, expose): shown to whoever waits for it. */
  command: string;
  log: StepLog;
  signal?: AbortSignal;
  waitMs?: number;
}

export class ClusterLock {
  readonly identity = `${os.hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private held = false;
  private renewTimer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private kube?: KubeClient;

  constructor(
    private readonly connect: () => Promise<KubeClient>,
    private readonly opts: ClusterLockOptions,
  ) {}

  get isHeld(): boolean {
    return this.held;
  }

  /** Takes the lock, waiting up to MESHDEMO_LOCK_WAIT for another holder; idempotent. */
  async acquire(): Promise<void> {
    if (this.held) return;
    const kube = (this.kube = await this.connect());
    if (!(await kube.serves(LEASE_REF.apiVersion, LEASE_REF.kind))) {
      this.opts.log.warn('this cluster serves no coordination.k8s.io/v1 Leases: running without the lock against concurrent meshdemo runs');
      return;
    }
    const waitMs = this.opts.waitMs ?? lockWaitMs();
    const deadline = Date.now() + waitMs;
    let announced = false;
    for (let attempt = 0; ; attempt++) {
      if (this.opts.signal?.aborted) throw new InterruptedError();
      const live = await this.guard(() => kube.get(LEASE_REF));
      const holder = describeHolder(live);
      const now = new Date();
      const free = !holder || holder.identity === this.identity || (holder.expiresAt !== undefined && holder.expiresAt < now) || holderIsDeadLocalProcess(holder.identity);
      if (free) {
        const spec = {
          holderIdentity: this.identity,
          leaseDurationSeconds: LEASE_DURATION_SECONDS,
          acquireTime: microTime(now),
          renewTime: microTime(now),
        };
        const annotations = { [COMMAND_ANNOTATION]: this.opts.command };
        try {
          if (!live) {
            await this.guard(() =>
              kube.create({ ...LEASE_REF, metadata: { name: LOCK_NAME, namespace: LOCK_NAMESPACE, labels: { ...MANAGED_BY }, annotations }, spec: { ...spec, leaseTransitions: 0 } }),
            );
          } else {
            // resourceVersion in the patch makes it conditional: a concurrent taker gets 409 and looks again
            await this.guard(() =>
              kube.mergePatch(LEASE_REF, {
                metadata: { resourceVersion: live.metadata.resourceVersion, annotations },
                spec: { ...spec, leaseTransitions: Number(live.spec?.leaseTransitions ?? 0) + (holder ? 1 : 0) },
              }),
            );
            if (holder && holder.identity !== this.identity) this.opts.log.note(`took over the lock of ${holder.identity}, which ${holderIsDeadLocalProcess(holder.identity) ? 'is no longer running' : 'expired'}`);
          }
          this.held = true;
          this.startRenewing();
          this.opts.log.debug(`holding Lease ${LOCK_NAMESPACE}/${LOCK_NAME} as ${this.identity}`);
          return;
        } catch (err) {
          if (err instanceof KubeApiError && !live && err.status === 404) {
            throw new PreflightError(`cannot take meshdemo's lock: namespace ${LOCK_NAMESPACE} does not exist`, { hint: `create it (kubectl create namespace ${LOCK_NAMESPACE})` });
          }
          if (!(err instanceof KubeApiError && (err.status === 409 || err.status === 404))) throw err;
          continue; // someone else was faster (or it just vanished): look again
        }
      }
      if (Date.now() >= deadline) {
        const what = `meshdemo ${holder!.command ?? 'up/down'}`;
        throw new PreflightError(`another ${what} (holder ${holder!.identity}) is running against this cluster`, {
          hint: `wait for it to finish and re-run; if it died, its lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}) expires ${LEASE_DURATION_SECONDS}s after its last renewal${holder!.expiresAt ? ` (at ${holder!.expiresAt.toISOString()})` : ''}`,
        });
      }
      if (!announced) {
        announced = true;
        this.opts.log.info(`waiting up to ${Math.round(waitMs / 1000)}s for another meshdemo ${holder!.command ?? 'run'} (holder ${holder!.identity}) to finish`);
      }
      const pause = Math.min(1000, 200 * 2 ** attempt, Math.max(50, deadline - Date.now()));
      await sleep(pause, undefined, { signal: this.opts.signal }).catch(() => {
        throw new InterruptedError();
      });
    }
  }

  /**
   * Deletes the Lease when its holder is gone (expired, or a process on this machine that no longer runs),
   * e.g. after an up that was killed. Returns the abandoned holder, if there was one.
   */
  async clearStale(): Promise<string | undefined> {
    const kube = (this.kube ??= await this.connect());
    if (!(await kube.serves(LEASE_REF.apiVersion, LEASE_REF.kind))) return undefined;
    const live = await kube.get(LEASE_REF).catch(() => undefined);
    const holder = describeHolder(live);
    if (!live) return undefined;
    const stale = !holder || (holder.expiresAt !== undefined && holder.expiresAt < new Date()) || holderIsDeadLocalProcess(holder.identity);
    if (!stale) return undefined;
    try {
      await kube.request('DELETE', await kube.pathFor(LEASE_REF), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion } },
      });
      return holder?.identity ?? '(nobody)';
    } catch {
      return undefined; // taken or removed meanwhile
    }
  }

  /** Deletes the Lease if it is still ours; never throws (the lock expires anyway). Works after Ctrl-C. */
  async release(): Promise<void> {
    if (!this.held || !this.kube) return;
    this.held = false;
    clearInterval(this.renewTimer);
    await this.renewing?.catch(() => {});
    const kube = this.kube;
    // the command's signal may be aborted (Ctrl-C): these requests get one of their own
    const signal = new AbortController().signal;
    try {
      const path = await kube.pathFor(LEASE_REF);
      const live = await kube.request<KubeObject>('GET', path, { signal, retryMs: 5000 });
      if (live?.spec?.holderIdentity !== this.identity) return;
      await kube.request('DELETE', path, {
        signal,
        retryMs: 5000,
        body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: live.metadata.uid, resourceVersion: live.metadata.resourceVersion } },
      });
    } catch (err) {
      this.opts.log.debug(`could not release the lock: ${(err as Error).message}; it expires in ${LEASE_DURATION_SECONDS}s`);
    }
  }

  private startRenewing(): void {
    this.renewTimer = setInterval(() => {
      this.renewing = this.renew().catch((err) => this.opts.log.debug(`renewing the lock failed: ${(err as Error).message}`));
    }, RENEW_EVERY_MS);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (!this.held || !this.kube) return;
    const kube = this.kube;
    const signal = new AbortController().signal;
    const path = await kube.pathFor(LEASE_REF);
    const live = await kube.request<KubeObject>('GET', path, { signal, retryMs: 5000 }).catch(() => undefined);
    if (!this.held) return;
    if (live?.spec?.holderIdentity !== this.identity) {
      this.opts.log.warn(`lost the lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}) to ${live?.spec?.holderIdentity ?? 'nobody'}; another meshdemo run may now change this cluster too`);
      this.held = false;
      clearInterval(this.renewTimer);
      return;
    }
    await kube.request('PATCH', path, {
      signal,
      retryMs: 5000,
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion: live.metadata.resourceVersion }, spec: { renewTime: microTime() } },
    });
  }

  /** A refusal to touch the Lease is a permission problem the user can act on. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KubeForbiddenError) {
        throw new PreflightError(`cannot take meshdemo's lock (Lease ${LOCK_NAMESPACE}/${LOCK_NAME}): ${err.message}`, {
          hint: `grant get, create, patch and delete on leases.coordination.k8s.io in namespace ${LOCK_NAMESPACE} to this identity`,
        });
      }
      throw err;
    }
  }
}
