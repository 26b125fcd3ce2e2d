import fs from 'node:fs';

/**
 * Which PID namespace of which boot this process runs in: `<boot id>:<inode of /proc/self/ns/pid>`. A PID means
 * something only there — containers that share the host's name (host UTS or network) each have their own PID
 * namespace, where our PID may be another process or none at all. Empty where there are no PID namespaces (macOS).
 */
export function pidNamespace(): string {
  try {
    const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const inode = /^pid:\[(\d+)\]$/.exec(fs.readlinkSync('/proc/self/ns/pid'))?.[1];
    return bootId && inode ? `${bootId}:${inode}` : '';
  } catch {
    return '';
  }
}

/**
 * Whether process `pid` of PID namespace `namespace` is known to be gone: only a process of our own namespace
 * can be looked up; of any other nothing is known (false). Never true for this process.
 */
export function processGone(pid: number, namespace: string): boolean {
  if (namespace !== pidNamespace() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
