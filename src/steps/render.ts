import fs from 'node:fs';
import path from 'node:path';
import type { CommandContext } from '../commands/action.js';
import type { Step } from '../record/context.js';
import { renderAppManifests } from '../demo/app-manifests.js';
import { resolveImages } from '../demo/image-target.js';
import type { UpSettings } from '../settings.js';

/** `up --render [dir]`: the app manifests written to dir/app.yaml (or printed), nothing applied. */
export const renderStep: Step<UpSettings> = {
  id: 'render',
  title: 'Render the demo app manifests',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'writes files only' };
  },
  async run(ctx) {
    const { text } = renderAppManifests(ctx.options.namespace, await resolveImages(ctx));
    const target = ctx.settings.render;
    if (typeof target === 'string') {
      fs.mkdirSync(target, { recursive: true });
      const file = path.join(target, 'app.yaml');
      fs.writeFileSync(file, text);
      return `wrote ${file}`;
    }
    (ctx as CommandContext<UpSettings>).ui?.print(text);
    return 'printed to stdout';
  },
};
