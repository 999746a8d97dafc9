#!/usr/bin/env node
// Entry point of the `ferry` command. It loads the TypeScript sources through tsx, so that
// `npx ferry` works right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
