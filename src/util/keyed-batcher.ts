/**
 * Coalesces concurrent requests per key into batches, without a timer: a request starts a batch at
 * once while fewer than `maxInFlight` batches of its key run; otherwise it waits, and leaves with
 * every request that queued behind it (up to `maxBatch`) as soon as a batch of its key ends. At
 * low load every request goes alone and at once; under load a batch holds what arrived while the
 * previous ones ran, so one protocol session serves many requests.
 */
export type BatchRunner<In, Out> = (key: string, items: readonly In[]) => Promise<readonly Out[]>;

interface Waiting<In, Out> {
  readonly item: In;
  readonly resolve: (out: Out) => void;
  readonly reject: (err: unknown) => void;
}

interface Lane<In, Out> {
  inFlight: number;
  readonly queue: Waiting<In, Out>[];
}

export class KeyedBatcher<In, Out> {
  private readonly lanes = new Map<string, Lane<In, Out>>();

  constructor(
    private readonly run: BatchRunner<In, Out>,
    private readonly maxBatch: number,
    private readonly maxInFlight: number,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError('maxBatch must be a positive integer');
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError('maxInFlight must be a positive integer');
  }

  /** Resolves with this item's output of its batch, or rejects with the batch's error. */
  submit(key: string, item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      let lane = this.lanes.get(key);
      if (!lane) {
        lane = { inFlight: 0, queue: [] };
        this.lanes.set(key, lane);
      }
      lane.queue.push({ item, resolve, reject });
      this.pump(key, lane);
    });
  }

  private pump(key: string, lane: Lane<In, Out>): void {
    while (lane.inFlight < this.maxInFlight && lane.queue.length > 0) {
      const batch = lane.queue.splice(0, this.maxBatch);
      lane.inFlight++;
      void this.runBatch(key, batch).finally(() => {
        lane.inFlight--;
        if (lane.inFlight === 0 && lane.queue.length === 0) this.lanes.delete(key);
        else this.pump(key, lane);
      });
    }
  }

  private async runBatch(key: string, batch: readonly Waiting<In, Out>[]): Promise<void> {
    try {
      const outs = await this.run(
        key,
        batch.map((w) => w.item),
      );
      if (outs.length !== batch.length) throw new Error(`batch runner returned ${outs.length} results for ${batch.length} items`);
      batch.forEach((w, i) => w.resolve(outs[i]!));
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}
