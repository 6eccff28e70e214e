// Playing audio while it streams: 16-bit little-endian mono PCM (a streamed WAV's data, or raw
// pcm) is scheduled through the Web Audio API chunk by chunk as it arrives, back to back, so the
// first sentence sounds while the next is still being synthesized.

const WAV_HEADER_BYTES = 44;

export class PcmPlayer {
  // `context` is made by the caller inside the click that asked for speech: browsers let an
  // AudioContext made during a user gesture start at once. `sampleRate` is the stream's
  // (X-Audio-Sample-Rate); Web Audio resamples buffers to the context's own rate.
  constructor(context, sampleRate, isWav) {
    this.context = context;
    this.sampleRate = sampleRate;
    this.header = isWav ? new Uint8Array(0) : null; // WAV bytes before the samples, until found
    this.carry = new Uint8Array(0); // an odd byte left from the previous chunk
    this.next = 0; // when (context time) the next chunk starts
    this.frames = 0;
    this.firstSoundAt = null; // performance.now() at the first sample heard
    this.origin = null; // the context time of the first sample: where the audio's time 0 is
    this.last = null; // the last scheduled source: its end is the end of the audio
  }

  push(bytes) {
    if (this.header !== null) {
      bytes = this.skipHeader(bytes);
      if (bytes === null) return;
    }
    const data = concat(this.carry, bytes);
    const usable = data.length - (data.length % 2);
    this.carry = data.slice(usable);
    if (usable) this.schedule(new DataView(data.buffer, data.byteOffset, usable));
  }

  // The samples after the WAV header: the "data" chunk's contents (its streamed size is unknown).
  skipHeader(bytes) {
    const data = concat(this.header, bytes);
    const at = dataChunkStart(data);
    if (at === null) {
      this.header = data;
      return null;
    }
    this.header = null;
    return data.slice(at);
  }

  schedule(view) {
    const count = view.byteLength / 2;
    const buffer = this.context.createBuffer(1, count, this.sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < count; i++) channel[i] = view.getInt16(i * 2, true) / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const now = this.context.currentTime;
    const start = Math.max(now + 0.02, this.next);
    source.start(start);
    if (this.firstSoundAt === null) {
      this.firstSoundAt = performance.now() + (start - now) * 1000;
      this.origin = start;
    }
    this.next = start + buffer.duration;
    this.frames += count;
    this.last = source;
  }

  get seconds() {
    return this.frames / this.sampleRate;
  }

  // Resolves once the last chunk has been heard.
  ended() {
    if (this.last === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.last.addEventListener("ended", resolve, { once: true });
    });
  }
}

function concat(a, b) {
  if (!a.length) return b;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

// Where a WAV's samples begin (after the "data" chunk's id and size), or null before it arrived.
function dataChunkStart(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 12; // "RIFF", size, "WAVE"
  while (at + 8 <= bytes.length) {
    const id = String.fromCharCode(...bytes.subarray(at, at + 4));
    if (id === "data") return at + 8;
    at += 8 + view.getUint32(at + 4, true);
  }
  return null;
}

// A WAV file around raw 16-bit mono PCM, so the <audio> element can replay a stored pcm object.
export function wavFile(pcm, sampleRate) {
  const header = new DataView(new ArrayBuffer(WAV_HEADER_BYTES));
  const text = (at, value) => [...value].forEach((c, i) => header.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF");
  header.setUint32(4, 36 + pcm.byteLength, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true);
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true);
  header.setUint16(32, 2, true);
  header.setUint16(34, 16, true);
  text(36, "data");
  header.setUint32(40, pcm.byteLength, true);
  return new Blob([header.buffer, pcm], { type: "audio/wav" });
}
