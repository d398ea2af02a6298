// A pull reader over an async byte source: the tar parser asks for exact amounts (512-byte headers,
// member bodies) instead of reacting to whatever chunk sizes the decompressor produces.
import { PublishError } from '../../util/errors';

export class TruncatedError extends PublishError {}

export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly label: string,
  ) {}

  static from(source: AsyncIterable<Uint8Array>, label: string): ByteReader {
    return new ByteReader(source[Symbol.asyncIterator](), label);
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const r = await this.source.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      const b = Buffer.isBuffer(r.value)
        ? r.value
        : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return this.buffered >= n;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    let out: Buffer;
    if (first.length > n) {
      out = first.subarray(0, n);
      this.chunks[0] = first.subarray(n);
    } else if (first.length === n) {
      out = first;
      this.chunks.shift();
    } else {
      out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0] as Buffer;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    this.position += n;
    return out;
  }

  /** Exactly `n` bytes; undefined at a clean end of input; throws when the input stops part-way. */
  async readExact(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return undefined;
      throw new TruncatedError(
        `${this.label}: unexpected end of archive (wanted ${n} bytes, got ${this.buffered})`,
      );
    }
    return this.take(n);
  }

  /** Streams the next `n` bytes as they arrive, without gathering them. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) {
        throw new TruncatedError(
          `${this.label}: unexpected end of archive (${left} bytes of a member missing)`,
        );
      }
      const first = this.chunks[0] as Buffer;
      const out = this.take(Math.min(first.length, left));
      left -= out.length;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      /* discard */
    }
  }

  /** Consumes the rest of the input (padding after the end-of-archive marker); returns how much. */
  async drain(): Promise<number> {
    let total = this.buffered;
    this.chunks = [];
    this.buffered = 0;
    while (!this.ended) {
      const r = await this.source.next();
      if (r.done) this.ended = true;
      else total += r.value.length;
    }
    this.position += total;
    return total;
  }

  async close(): Promise<void> {
    await this.source.return?.();
  }
}
