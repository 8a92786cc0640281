import assert from 'node:assert/strict';
import { test } from 'node:test';
import { present } from '../src/status';

const ready = {
  state: 'ready',
  model: '/m/gemma.gguf',
  template: 'prefix-only',
  error: null,
  lastLatencyMs: 212.4,
  acceptance: { shown: 10, accepted: 3, rate: 0.3 },
};

test('ready: latency in the bar, model and acceptance in the tooltip', () => {
  const shown = present(ready, true, true);
  assert.equal(shown.text, '$(sparkle) Inkling 212 ms');
  assert.match(shown.tooltip, /gemma\.gguf \(prefix-only prompt\)/);
  assert.match(shown.tooltip, /Accepted this session: 3 of 10/);
  assert.equal(shown.problem, false);
});

test('loading, off, failed, stopped', () => {
  assert.equal(present({ ...ready, state: 'loading', lastLatencyMs: null }, true, true).text, '$(sync~spin) Inkling');
  assert.equal(present(ready, false, true).text, '$(circle-slash) Inkling');
  const failed = present({ ...ready, state: 'failed', error: 'not a GGUF file' }, true, true);
  assert.ok(failed.problem && failed.tooltip.includes('not a GGUF file'));
  assert.equal(present(undefined, true, false).text, '$(debug-disconnect) Inkling');
  assert.ok(present(undefined, true, false, 'no Inkling server found').problem);
});
