import type { Renderer } from './renderer.js';

/** One status line that keeps changing (traffic's counters): redrawn in place on a terminal, every few seconds otherwise. */
export interface LiveLine {
  update(text: string): void;
  stop(): void;
}

export async function createLiveLine(ui: Renderer, opts: { plainEveryMs?: number; stream?: NodeJS.WritableStream } = {}): Promise<LiveLine> {
  const stream = opts.stream ?? process.stderr;
  if (ui.mode === 'tty') {
    const { default: ora } = await import('ora');
    const spinner = ora({ text: '', stream }).start();
    return {
      update: (text) => {
        spinner.text = text;
      },
      stop: () => spinner.stop(),
    };
  }
  if (ui.mode !== 'json') {
    let last = 0;
    const every = opts.plainEveryMs ?? 5000;
    return {
      update: (text) => {
        if (Date.now() - last < every) return;
        last = Date.now();
        stream.write(`  ${text}\n`);
      },
      stop() {},
    };
  }
  return { update() {}, stop() {} }; // --json: the command emits `traffic` events instead
}
