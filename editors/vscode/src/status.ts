// What the status bar shows, from the server's `inkling/status`.

export interface Acceptance {
  shown: number;
  accepted: number;
  rate: number | null;
}

export interface ServerStatus {
  state: string; // 'not loaded' | 'loading' | 'ready' | 'failed'
  model?: string;
  template?: string | null;
  error?: string | null;
  lastLatencyMs?: number | null;
  acceptance?: Acceptance;
}

export interface Presentation {
  text: string;
  tooltip: string;
  problem: boolean;
}

export function present(status: ServerStatus | undefined, enabled: boolean, running: boolean, problem?: string): Presentation {
  if (problem) {
    return { text: '$(error) Inkling', tooltip: `Inkling: ${problem}`, problem: true };
  }
  if (!running || status === undefined) {
    return { text: '$(debug-disconnect) Inkling', tooltip: 'Inkling: the server is not running', problem: false };
  }
  if (status.state === 'failed') {
    return { text: '$(error) Inkling', tooltip: `Inkling: the model failed to load: ${status.error ?? 'unknown error'}`, problem: true };
  }
  const lines = [`Inkling: model ${status.state}`];
  if (status.model) {
    lines.push(`Model: ${status.model}${status.template ? ` (${status.template} prompt)` : ''}`);
  }
  if (typeof status.lastLatencyMs === 'number') {
    lines.push(`Last completion: ${Math.round(status.lastLatencyMs)} ms`);
  }
  const acceptance = status.acceptance;
  if (acceptance && acceptance.shown > 0) {
    lines.push(`Accepted this session: ${acceptance.accepted} of ${acceptance.shown}`);
  }
  lines.push(enabled ? 'Completions on' : 'Completions off');
  const tooltip = lines.join('\n');
  if (!enabled) {
    return { text: '$(circle-slash) Inkling', tooltip, problem: false };
  }
  if (status.state !== 'ready') {
    return { text: '$(sync~spin) Inkling', tooltip, problem: false };
  }
  const latency = typeof status.lastLatencyMs === 'number' ? ` ${Math.round(status.lastLatencyMs)} ms` : '';
  return { text: `$(sparkle) Inkling${latency}`, tooltip, problem: false };
}
