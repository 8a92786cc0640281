// A stand-in for vscode-languageclient's LanguageClient: records how the extension drives it.

export enum State {
  Stopped = 1,
  Running = 2,
  Starting = 3,
}

export const DidChangeConfigurationNotification = { type: { method: 'workspace/didChangeConfiguration' } };

export class LanguageClient {
  static instances: LanguageClient[] = [];
  /** What `inkling/status` answers for the next client. */
  static statusReply: unknown = { state: 'loading', model: '', template: null, error: null, lastLatencyMs: null };

  state = State.Stopped;
  proposedFeatures = false;
  notifications: { method: string; params: unknown }[] = [];
  handlers = new Map<string, (params: never) => unknown>();
  private stateListeners: (() => unknown)[] = [];

  constructor(
    public readonly id: string,
    public readonly name: string,
    public readonly serverOptions: { command: string; args: string[] },
    public readonly clientOptions: {
      documentSelector: { scheme: string; language: string }[];
      initializationOptions: Record<string, unknown>;
      middleware: {
        provideCompletionItem?: (...args: unknown[]) => unknown;
        provideInlineCompletionItems?: (...args: never[]) => Promise<unknown>;
      };
    },
  ) {
    LanguageClient.instances.push(this);
  }

  registerProposedFeatures(): void {
    this.proposedFeatures = true;
  }

  onNotification(method: string, handler: (params: never) => unknown): void {
    this.handlers.set(method, handler);
  }

  onDidChangeState(listener: () => unknown): void {
    this.stateListeners.push(listener);
  }

  async start(): Promise<void> {
    this.state = State.Running;
    this.stateListeners.forEach((listener) => listener());
  }

  async stop(): Promise<void> {
    this.state = State.Stopped;
    this.stateListeners.forEach((listener) => listener());
  }

  async sendRequest<T>(method: string): Promise<T> {
    if (method !== 'inkling/status') {
      throw new Error(`unexpected request ${method}`);
    }
    return LanguageClient.statusReply as T;
  }

  async sendNotification(type: { method: string }, params: unknown): Promise<void> {
    this.notifications.push({ method: type.method, params });
  }

  /** Test helper: the server sends a notification. */
  notify(method: string, params: unknown): void {
    this.handlers.get(method)?.(params as never);
  }
}
