import { NotImplementedError } from '../core/errors.js';
import type { Step } from '../core/step.js';

/** A registered step whose implementation has not landed: it fails loudly, never succeeds silently. */
export function notImplemented(id: string, title: string): Step<any> {
  return {
    id,
    title,
    async check() {
      return { satisfied: false, detail: 'not implemented yet' };
    },
    async run() {
      throw new NotImplementedError(`step "${id}"`);
    },
  };
}
