// The one place that loads the addon. napi-rs types cross into the SDK only through here.
import { createRequire } from 'node:module';

import type * as Binding from '../../native/binding.cjs';

const require = createRequire(import.meta.url);

export const native: typeof Binding = require('../../native/binding.cjs');
export type { Binding };
