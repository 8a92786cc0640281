// Bundles the extension (and, with --tests, the unit tests against a mocked `vscode`).
import * as esbuild from 'esbuild';
import { readdirSync } from 'fs';

const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node18', sourcemap: true, logLevel: 'warning' };

const production = process.argv.includes('--production');
await esbuild.build({
  ...common,
  entryPoints: ['src/extension.ts'],
  outfile: 'out/extension.js',
  external: ['vscode'],
  minify: production,
  sourcemap: !production,
});

if (process.argv.includes('--tests')) {
  const tests = readdirSync('test').filter((name) => name.endsWith('.test.ts'));
  await esbuild.build({
    ...common,
    entryPoints: tests.map((name) => `test/${name}`),
    outdir: 'out/test',
    alias: {
      vscode: './test/mock/vscode.ts',
      'vscode-languageclient/node': './test/mock/languageclient.ts',
    },
  });
  // Integration: the real vscode-languageclient, hosted by the mocked `vscode`.
  await esbuild.build({
    ...common,
    entryPoints: ['test/integration/realServer.test.ts'],
    outdir: 'out/test/integration',
    alias: { vscode: './test/mock/vscode.ts' },
  });
}
